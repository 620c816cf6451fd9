"""Configuration ➜ Features: the built-in worker switch, explained in a sentence; ConfigureServer only."""

import pytest

from deployments.models import ServerConfiguration
from portal.models import Event

pytestmark = pytest.mark.django_db


def test_the_page_explains_the_switch_and_turns_the_built_in_worker_off_and_on(page_client, administrator):
    client = page_client(administrator)
    html = client.get("/configuration/features/").content.decode()
    assert "Built-in worker" in html and "user scripts never run on the server" in html and "checked" in html
    response = client.post("/configuration/features/", {}, follow=True)
    assert not ServerConfiguration.current().is_builtin_worker_enabled
    assert "off: user scripts never run on the server" in response.content.decode()
    client.post("/configuration/features/", {"builtin_worker": "on"})
    assert ServerConfiguration.current().is_builtin_worker_enabled
    assert Event.objects.filter(document_type="ServerConfiguration", user=administrator).count() == 2
    assert "/configuration/features/" in client.get("/configuration/").content.decode()


@pytest.mark.parametrize("persona", ["space_manager", "deployment_creator", "project_viewer"])
def test_it_needs_configure_server(request, page_client, persona):
    client = page_client(request.getfixturevalue(persona))
    assert client.get("/configuration/features/").status_code == 403
    assert client.post("/configuration/features/", {}).status_code == 403
    assert ServerConfiguration.current().is_builtin_worker_enabled


def test_the_page_says_which_account_built_in_scripts_run_as(page_client, administrator, settings):
    import os

    if os.geteuid() != 0:
        pytest.skip("only a server running as root can run scripts as another account")
    settings.REEF_BUILTIN_WORKER_USER = "nobody"
    html = page_client(administrator).get("/configuration/features/").content.decode()
    assert "Built-in scripts run as the account <code>nobody</code>" in html and "server's own account" not in html


def test_a_server_that_is_not_root_says_plainly_scripts_run_as_its_own_account(page_client, administrator, monkeypatch):
    import os
    import pwd

    monkeypatch.setattr(os, "geteuid", lambda: 65534)  # as a server started by an unprivileged account
    html = page_client(administrator).get("/configuration/features/").content.decode()
    name = pwd.getpwuid(65534).pw_name
    assert f"Built-in scripts run as the server's own account, <code>{name}</code>" in html
