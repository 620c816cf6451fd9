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
