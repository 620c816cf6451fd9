"""Who may see and change the project, environment and library pages: a project viewer reads but changes
nothing; an outsider's space does not exist (404); another space's objects do not exist either."""

import pytest

from deployments.models import DeploymentTarget, Environment, Package, Project, Runbook, Step, Variable
from deployments.services import catalog, deploy

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(administrator, space):
    project = catalog.create_project(actor=administrator, space=space, name="Shop")
    environment = catalog.create_environment(actor=administrator, space=space, name="Production")
    step = catalog.save_step(
        actor=administrator, project=project, name="Hello", location="Server", script_body="echo hi"
    )
    runbook = catalog.create_runbook(actor=administrator, project=project, name="Restart")
    runbook_step = catalog.save_step(
        actor=administrator,
        project=project,
        runbook=runbook,
        name="Bounce",
        location="Server",
        script_body="echo bounce",
    )
    variable = catalog.save_variable(actor=administrator, project=project, name="Greeting", type="String", value="hi")
    target = catalog.create_deployment_target(
        actor=administrator, space=space, name="web-01", kind="CloudRegion", roles=["web"], environments=[environment]
    )
    release = deploy.create_release(actor=administrator, project=project, version="1.0.0")
    return {
        "project": project.pk,
        "environment": environment.pk,
        "step": step.pk,
        "runbook": runbook.pk,
        "runbook_step": runbook_step.pk,
        "variable": variable.pk,
        "target": target.pk,
        "release": release.pk,
    }


VIEW_PAGES = [
    "projects/",
    "projects/{project}/",
    "projects/{project}/process/",
    "projects/{project}/steps/{step}/",
    "projects/{project}/variables/",
    "projects/{project}/variables/{variable}/",
    "projects/{project}/runbooks/",
    "projects/{project}/runbooks/{runbook}/",
    "projects/{project}/runbooks/{runbook}/steps/{runbook_step}/",
    "projects/{project}/releases/{release}/",
    "projects/{project}/settings/",
    "infrastructure/environments/",
    "infrastructure/environments/{environment}/",
    "infrastructure/deploymenttargets/",
    "infrastructure/deploymenttargets/{target}/",
    "library/packages/",
]


@pytest.mark.parametrize(
    "persona,expected",
    [
        ("administrator", 200),
        ("space_manager", 200),
        ("project_viewer", 200),
        ("deployment_creator", 200),
        ("outsider", 404),
    ],
)
def test_each_page_answers_each_persona_as_their_role_allows(request, page_client, space, objects, persona, expected):
    client = page_client(request.getfixturevalue(persona))
    for page in VIEW_PAGES:
        url = f"/{space.octopus_id}/" + page.format(**objects)
        assert client.get(url).status_code == expected, url


def test_a_project_viewer_sees_everything_but_can_change_nothing(page_client, project_viewer, space, objects):
    client = page_client(project_viewer)
    base = f"/{space.octopus_id}/"
    process = client.get(base + f"projects/{objects['project']}/process/").content.decode()
    assert "Hello" in process and "Add step" not in process and "Move Hello" not in process
    step = client.get(base + f"projects/{objects['project']}/steps/{objects['step']}/").content.decode()
    assert "needs the ProcessEdit permission" in step and 'id="save-step"' not in step
    for page in [
        "projects/{project}/steps/add/",
        "projects/{project}/releases/add/",
        "projects/{project}/releases/{release}/deploy/",
        "tasks/console/",
    ]:
        assert client.get(base + page.format(**objects)).status_code == 403, page
    writes = [
        ("projects/", {"name": "Nope"}),
        ("projects/{project}/settings/", {"name": "Renamed"}),
        ("projects/{project}/delete/", {}),
        ("projects/{project}/steps/add/", {"name": "x"}),
        ("projects/{project}/steps/{step}/", {"name": "Renamed"}),
        ("projects/{project}/steps/{step}/move/down/", {}),
        ("projects/{project}/steps/{step}/delete/", {}),
        ("projects/{project}/variables/", {"name": "Sneaky", "type": "String", "value": "x"}),
        ("projects/{project}/variables/{variable}/", {"name": "Greeting", "type": "String", "value": "changed"}),
        ("projects/{project}/variables/{variable}/delete/", {}),
        ("projects/{project}/runbooks/", {"name": "Sneaky"}),
        ("projects/{project}/runbooks/{runbook}/", {"environment": objects["environment"]}),
        ("projects/{project}/runbooks/{runbook}/delete/", {}),
        ("projects/{project}/releases/add/", {"version": "9.9.9"}),
        ("projects/{project}/releases/{release}/deploy/", {"environment": objects["environment"]}),
        ("infrastructure/environments/", {"name": "Sneaky"}),
        ("infrastructure/environments/{environment}/", {"name": "Renamed"}),
        ("infrastructure/environments/{environment}/delete/", {}),
        ("infrastructure/environments/{environment}/move/up/", {}),
        ("infrastructure/deploymenttargets/{target}/delete/", {}),
        ("tasks/console/", {"syntax": "Bash", "script_body": "id"}),
    ]
    for page, data in writes:
        assert client.post(base + page.format(**objects), data).status_code == 403, page
    assert list(Project.objects.values_list("name", flat=True)) == ["Shop"] and Step.objects.count() == 2
    assert Variable.objects.get().value == "hi" and list(Environment.objects.values_list("name", flat=True)) == [
        "Production"
    ]
    assert Runbook.objects.count() == 1 and DeploymentTarget.objects.count() == 1 and not Package.objects.exists()
    assert Project.objects.get().releases.count() == 1 and not Project.objects.get().server_tasks.exists()


def test_another_spaces_objects_are_not_found_even_for_an_administrator(
    page_client, administrator, space, other_space, objects
):
    foreign = catalog.create_project(actor=administrator, space=other_space, name="Far")
    far_env = catalog.create_environment(actor=administrator, space=other_space, name="Far env")
    far_target = catalog.create_deployment_target(
        actor=administrator, space=other_space, name="far", kind="CloudRegion", roles=["web"], environments=[far_env]
    )
    client = page_client(administrator)
    base = f"/{space.octopus_id}/"
    for page in [
        f"projects/{foreign.pk}/",
        f"projects/{foreign.pk}/process/",
        f"projects/{foreign.pk}/variables/",
        f"projects/{foreign.pk}/steps/add/",
        f"infrastructure/environments/{far_env.pk}/",
        f"infrastructure/deploymenttargets/{far_target.pk}/",
        f"projects/{objects['project']}/steps/{objects['runbook_step']}/",
    ]:  # a runbook's step is not the process's
        assert client.get(base + page).status_code == 404, page
    for page in [
        f"projects/{foreign.pk}/delete/",
        f"infrastructure/environments/{far_env.pk}/delete/",
        f"infrastructure/deploymenttargets/{far_target.pk}/delete/",
    ]:
        assert client.post(base + page).status_code == 404, page
    assert Project.objects.filter(pk=foreign.pk).exists() and Environment.objects.filter(pk=far_env.pk).exists()
