"""Infrastructure ➜ Environments: add, rename, reorder, and delete only what nothing uses."""

import pytest

from deployments.models import Environment
from deployments.services import catalog, deploy
from portal.models import Event

pytestmark = pytest.mark.django_db


def _names(space):
    return list(Environment.objects.filter(space=space).values_list("name", flat=True))


def test_environments_are_added_in_order_and_moved_up_and_down(page_client, environment_manager, space):
    client = page_client(environment_manager)
    base = f"/{space.octopus_id}/infrastructure/environments/"
    for name in ("Development", "Test", "Production"):
        assert client.post(base, {"name": name}).status_code == 302
    assert _names(space) == ["Development", "Test", "Production"]
    production = Environment.objects.get(name="Production")
    client.post(base + f"{production.pk}/move/up/")
    assert _names(space) == ["Development", "Production", "Test"]
    client.post(base + f"{production.pk}/move/down/")
    client.post(base + f"{production.pk}/move/down/")  # already last: nothing changes
    assert _names(space) == ["Development", "Test", "Production"]
    html = client.get(base).content.decode()
    assert html.index("Development") < html.index("Test") < html.index("Production")
    assert Event.objects.filter(message__startswith="Environments reordered").exists()


def test_an_environment_is_renamed_on_its_page(page_client, environment_manager, administrator, space):
    environment = catalog.create_environment(actor=administrator, space=space, name="Prod")
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/environments/{environment.pk}/"
    assert client.post(url, {"name": "Production", "description": "Live"}).status_code == 302
    environment.refresh_from_db()
    assert (environment.name, environment.description) == ("Production", "Live")
    event = Event.objects.filter(document_type="Environment", category="Modified").get()
    assert event.changes["name"] == ["Prod", "Production"]


def test_an_environment_in_use_is_not_deleted_and_an_unused_one_is(
    page_client, environment_manager, administrator, project
):
    space = project.space
    used = catalog.create_environment(actor=administrator, space=space, name="Production")
    spare = catalog.create_environment(actor=administrator, space=space, name="Spare")
    catalog.save_step(actor=administrator, project=project, name="Hello", location="Server", script_body="echo hi")
    catalog.save_variable(
        actor=administrator, project=project, name="Url", type="String", value="x", environments=[used]
    )
    deploy.deploy_release(
        actor=administrator, release=deploy.create_release(actor=administrator, project=project), environment=used
    )
    client = page_client(environment_manager)
    base = f"/{space.octopus_id}/infrastructure/environments/"
    refused = client.post(base + f"{used.pk}/delete/", follow=True).content.decode()
    assert "Production is in use and cannot be deleted" in refused and "1 deployment" in refused
    assert "the variable Url of Hello (scoped to it)" in refused and Environment.objects.filter(pk=used.pk).exists()
    assert (
        client.post(base + f"{spare.pk}/delete/").status_code == 302
        and not Environment.objects.filter(pk=spare.pk).exists()
    )
