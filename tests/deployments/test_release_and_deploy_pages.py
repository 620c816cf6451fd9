"""Create a release (the next number offered), see it, and deploy it from its Deploy page: the task's page
follows; a pool the deployer's teams may not use is refused with a message naming it (403)."""

import pytest

from deployments.models import Release
from deployments.services import catalog, deploy
from infrastructure.services.pools import set_teams_that_may_use_pool
from portal.services import teams
from servertasks.models import ServerTask

pytestmark = pytest.mark.django_db


def test_a_release_is_created_with_the_next_number_and_deployed(
    page_client, administrator, deployment_creator, project, production
):
    catalog.save_step(actor=administrator, project=project, name="Hello", location="Server", script_body="echo hi")
    deploy.create_release(actor=administrator, project=project, version="1.0.4")
    client = page_client(administrator)
    base = f"/{project.space.octopus_id}/projects/{project.pk}/"
    assert 'value="1.0.5"' in client.get(base + "releases/add/").content.decode()
    response = client.post(base + "releases/add/", {"version": "1.0.5", "release_notes": "Faster"})
    release = Release.objects.get(version="1.0.5")
    assert response["Location"] == base + f"releases/{release.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert (
        "Release 1.0.5" in page
        and "Faster" in page
        and "Hello" in page
        and "Run on the server" in page
        and "Not deployed yet" in page
    )
    deployed = page_client(deployment_creator).post(
        base + f"releases/{release.pk}/deploy/", {"environment": production.pk}
    )
    task = ServerTask.objects.get()
    assert deployed.status_code == 302 and deployed["Location"] == f"/{project.space.octopus_id}/tasks/{task.pk}/"
    overview = client.get(base).content.decode()
    assert 'data-environment="Production"' in overview and "1.0.5" in overview and task.state in overview


def test_a_project_without_steps_cannot_have_a_release(page_client, administrator, project):
    response = page_client(administrator).post(
        f"/{project.space.octopus_id}/projects/{project.pk}/releases/add/", {"version": ""}
    )
    assert response.status_code == 400 and "has no deployment process steps yet" in response.content.decode()
    assert not Release.objects.exists()


def test_deploying_onto_a_pool_the_teams_may_not_use_is_refused_naming_it(
    page_client, administrator, deployment_creator, project, production, make_pool, space
):
    pool = make_pool("Restricted")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    release = deploy.create_release(actor=administrator, project=project)
    set_teams_that_may_use_pool(
        actor=administrator, pool=pool, teams=[teams.create_team(actor=administrator, name="Owners", space=space)]
    )
    response = page_client(deployment_creator).post(
        f"/{space.octopus_id}/projects/{project.pk}/releases/{release.pk}/deploy/", {"environment": production.pk}
    )
    assert response.status_code == 403 and "Restricted" in response.content.decode()
    assert not ServerTask.objects.exists()


def test_the_release_page_names_the_pool_of_each_snapshot_step(page_client, administrator, project, make_pool):
    pool = make_pool("Linux builders")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    release = deploy.create_release(actor=administrator, project=project)
    page = (
        page_client(administrator)
        .get(f"/{project.space.octopus_id}/projects/{project.pk}/releases/{release.pk}/")
        .content.decode()
    )
    assert "Run once on a worker · pool Linux builders" in page
