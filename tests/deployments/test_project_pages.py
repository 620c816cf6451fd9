"""The project pages: the step editor's words, variables, releases and deploy, the Script Console,
Features, and who may do what."""

import pytest

from deployments.models import Project, ServerConfiguration, Step, Variable
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db


def test_the_step_editor_words_execution_locations_as_octopus_does(page_client, administrator, project):
    html = (
        page_client(administrator).get(f"/{project.space.octopus_id}/projects/{project.pk}/steps/add/").content.decode()
    )
    for words in (
        "Run once on a worker",
        "Run on a worker on behalf of each deployment target",
        "Run on the server",
        "Runs on a worker from a specific worker pool",
        "Runs on a worker from a pool selected via a variable",
    ):
        assert words in html


def test_adding_a_step_through_the_editor_saves_it(page_client, administrator, project, make_pool):
    pool = make_pool("Builders")
    response = page_client(administrator).post(
        f"/{project.space.octopus_id}/projects/{project.pk}/steps/add/",
        {
            "name": "Build",
            "action_type": "Octopus.Script",
            "location": "Worker",
            "pool_source": "direct",
            "worker_pool": pool.pk,
            "syntax": "Bash",
            "script_body": "echo build",
            "condition": "Success",
            "max_parallelism": 10,
        },
    )
    assert response.status_code == 302
    step = Step.objects.get(project=project)
    assert (step.name, step.worker_pool, step.location) == ("Build", pool, "Worker")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"worker_pool": ""}, "worker_pool"),
        ({"location": "OnBehalfOfTargets"}, "target_roles"),
        ({"max_parallelism": 0}, "max_parallelism"),
        ({"pool_source": "variable", "worker_pool_variable": ""}, "worker_pool"),
    ],
)
def test_bad_steps_are_refused_with_the_field_and_nothing_is_saved(
    page_client, administrator, project, make_pool, changes, field
):
    body = {
        "name": "Build",
        "action_type": "Octopus.Script",
        "location": "Worker",
        "pool_source": "direct",
        "worker_pool": make_pool("P").pk,
        "syntax": "Bash",
        "script_body": "echo",
        "condition": "Success",
        "max_parallelism": 10,
    }
    response = page_client(administrator).post(
        f"/{project.space.octopus_id}/projects/{project.pk}/steps/add/", {**body, **changes}
    )
    assert response.status_code == 400
    assert f'data-field="{field}"' in response.content.decode()
    assert not Step.objects.exists()


def test_a_sensitive_variable_is_never_shown_again(page_client, administrator, project):
    client = page_client(administrator)
    client.post(
        f"/{project.space.octopus_id}/projects/{project.pk}/variables/add/",
        {"name": "DbPassword", "type": "Sensitive", "value": "hunter2-secret"},
    )
    variable = Variable.objects.get(project=project)
    assert variable.value and "hunter2-secret" not in variable.value  # encrypted at rest
    page = client.get(f"/{project.space.octopus_id}/projects/{project.pk}/").content.decode()
    assert "DbPassword" in page and "hunter2-secret" not in page


def test_create_a_release_and_deploy_it_from_the_project_page(page_client, administrator, project, production):
    add_step(project, "Hello", "echo hi")
    client = page_client(administrator)
    client.post(f"/{project.space.octopus_id}/projects/{project.pk}/releases/add/", {"version": ""})
    release = project.releases.get()
    response = client.post(
        f"/{project.space.octopus_id}/projects/{project.pk}/releases/{release.pk}/deploy/",
        {"environment": production.pk},
    )
    task = ServerTask.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/{project.space.octopus_id}/tasks/{task.pk}/"
    assert task.description == "Deploy Hello release 0.0.1 to Production"


def test_a_project_viewer_sees_projects_but_cannot_change_or_deploy_them(
    page_client, administrator, project_viewer, project, production
):
    add_step(project, "Hello", "echo hi")
    from deployments.services import deploy

    release = deploy.create_release(actor=administrator, project=project)
    client = page_client(project_viewer)
    space = project.space.octopus_id
    assert client.get(f"/{space}/projects/").status_code == 200
    page = client.get(f"/{space}/projects/{project.pk}/").content.decode()
    assert "Hello" in page and "Add step" not in page and "Deploy</button>" not in page
    assert client.post(f"/{space}/projects/", {"name": "Nope"}).status_code == 403
    assert (
        client.post(
            f"/{space}/projects/{project.pk}/releases/{release.pk}/deploy/", {"environment": production.pk}
        ).status_code
        == 403
    )
    assert Project.objects.count() == 1 and not ServerTask.objects.exists()


def test_an_outsider_gets_404_for_another_spaces_project(page_client, outsider, project):
    assert page_client(outsider).get(f"/{project.space.octopus_id}/projects/{project.pk}/").status_code == 404


def test_features_turns_the_built_in_worker_off_and_needs_configure_server(
    page_client, administrator, deployment_creator
):
    assert page_client(deployment_creator).post("/configuration/features/", {}).status_code == 403
    assert ServerConfiguration.current().is_builtin_worker_enabled
    page_client(administrator).post("/configuration/features/", {})
    assert not ServerConfiguration.current().is_builtin_worker_enabled


def test_a_pool_used_by_a_step_cannot_be_deleted(administrator, project, make_pool):
    from django.core.exceptions import ValidationError

    from infrastructure.services.pools import delete_worker_pool

    pool = make_pool("Busy")
    add_step(project, "Build", "echo", worker_pool=pool)
    with pytest.raises(ValidationError, match="step Build of the deployment process of Hello"):
        delete_worker_pool(actor=administrator, pool=pool)
