"""The catalog refuses bad input, naming the field, and saves nothing: through the services and through
the pages, where a refusal is a 400 with the error beside its field."""

import pytest
from django.core.exceptions import ValidationError

from deployments.models import DeploymentTarget, Environment, Package, Project, Step, Variable
from deployments.services import catalog
from portal.models import Event

pytestmark = pytest.mark.django_db

STEP = {
    "name": "Build",
    "action_type": "Octopus.Script",
    "location": "Worker",
    "pool_source": "direct",
    "syntax": "Bash",
    "script_body": "echo build",
    "condition": "Success",
    "max_parallelism": 10,
}


def _field_error(response, field: str, words: str) -> None:
    html = response.content.decode()
    assert response.status_code == 400, html[:500]
    assert f'data-field="{field}">' in html and words in html, html


def test_an_environment_needs_a_unique_name(page_client, administrator, space):
    catalog.create_environment(actor=administrator, space=space, name="Production")
    client = page_client(administrator)
    _field_error(
        client.post(f"/{space.octopus_id}/infrastructure/environments/", {"name": "production"}), "name", "already"
    )
    _field_error(client.post(f"/{space.octopus_id}/infrastructure/environments/", {"name": " "}), "name", "required")
    assert list(Environment.objects.values_list("name", flat=True)) == ["Production"]


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"kind": "TentaclePassive", "uri": "http://web:10933/", "thumbprint": "A" * 40}, "uri", "https://HOST:10933/"),
        (
            {"kind": "TentaclePassive", "uri": "https://web:10933/", "thumbprint": "not-hex"},
            "thumbprint",
            "40 hexadecimal",
        ),
        ({"kind": "TentacleActive", "uri": "https://web:10933/", "thumbprint": "A" * 40}, "uri", "poll://"),
        ({"roles": "web server"}, "roles", "letters, digits"),
        ({"roles": " , "}, "roles", "at least one role"),
    ],
)
def test_a_deployment_target_is_checked_before_it_is_saved(page_client, administrator, space, changes, field, words):
    production = catalog.create_environment(actor=administrator, space=space, name="Production")
    data = {"name": "web-01", "kind": "CloudRegion", "roles": "web", "environments": [production.pk], **changes}
    _field_error(
        page_client(administrator).post(f"/{space.octopus_id}/infrastructure/deploymenttargets/", data), field, words
    )
    assert not DeploymentTarget.objects.exists()


def test_a_target_cannot_join_another_spaces_environment(administrator, space, other_space):
    foreign = catalog.create_environment(actor=administrator, space=other_space, name="Far")
    with pytest.raises(ValidationError) as refused:
        catalog.create_deployment_target(
            actor=administrator, space=space, name="t", kind="CloudRegion", roles=["web"], environments=[foreign]
        )
    assert "environments" in refused.value.message_dict and not DeploymentTarget.objects.exists()


def test_a_project_gets_a_slug_from_its_name_and_a_taken_name_is_refused(page_client, administrator, space):
    client = page_client(administrator)
    assert client.post(f"/{space.octopus_id}/projects/", {"name": "Web App: Frontend"}).status_code == 302
    assert Project.objects.get().slug == "web-app-frontend"
    _field_error(
        client.post(f"/{space.octopus_id}/projects/", {"name": "web app: frontend"}), "name", "already a project"
    )
    assert Project.objects.count() == 1


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"name": ""}, "name", "required"),
        ({"worker_pool": ""}, "worker_pool", "Choose a worker pool"),
        ({"location": "OnBehalfOfTargets"}, "target_roles", "at least one target role"),
        ({"max_parallelism": 0}, "max_parallelism", ""),
        (
            {"pool_source": "variable", "worker_pool_variable": "NoSuchVariable"},
            "worker_pool_variable",
            "no Worker Pool variable named NoSuchVariable",
        ),
        ({"packages": "website@2.0.0"}, "packages", "no package website 2.0.0"),
        ({"script_body": "  "}, "script_body", "Write the script"),
        ({"condition": "Variable", "condition_variable": ""}, "condition_variable", "variable expression"),
        ({"action_type": "Octopus.Manual", "instructions": ""}, "instructions", "what to check"),
    ],
)
def test_a_bad_step_is_a_400_naming_the_field_and_nothing_is_saved(
    page_client, administrator, project, make_pool, changes, field, words
):
    Package.objects.create(
        space=project.space, package_id="website", version="1.0.0", file_name="w.zip", sha256="0" * 64, size=1
    )
    data = {**STEP, "worker_pool": make_pool("Builders").pk, **changes}
    _field_error(
        page_client(administrator).post(f"/{project.space.octopus_id}/projects/{project.pk}/steps/add/", data),
        field,
        words,
    )
    assert not Step.objects.exists() and not Event.objects.filter(document_type="Step").exists()


def test_a_step_may_not_use_another_spaces_pool_nor_a_pool_when_it_runs_on_the_server(
    administrator, project, other_space
):
    from infrastructure.models import WorkerPool

    foreign = WorkerPool.objects.get(space=other_space, is_default=True)
    with pytest.raises(ValidationError, match="not a worker pool of Default"):
        catalog.save_step(
            actor=administrator, project=project, name="Far", location="Worker", worker_pool=foreign, script_body="x"
        )
    own = WorkerPool.objects.get(space=project.space, is_default=True)
    with pytest.raises(ValidationError, match="takes no pool"):
        catalog.save_step(
            actor=administrator, project=project, name="Here", location="Server", worker_pool=own, script_body="x"
        )
    assert not Step.objects.exists()


def test_powershell_packages_and_a_pool_variable_are_accepted(administrator, project, make_pool):
    pool = make_pool("Windows")
    catalog.save_variable(actor=administrator, project=project, name="Pool", type="WorkerPool", worker_pool=pool)
    Package.objects.create(
        space=project.space, package_id="website", version="1.0.0", file_name="w.zip", sha256="0" * 64, size=1
    )
    step = catalog.save_step(
        actor=administrator,
        project=project,
        name="Deploy",
        location="Worker",
        worker_pool_variable="Pool",
        syntax="PowerShell",
        script_body="Write-Host hi",
        packages=[{"PackageId": "website", "Version": ""}],
    )
    assert (step.syntax, step.worker_pool, step.worker_pool_variable, step.packages) == (
        "PowerShell",
        None,
        "Pool",
        [{"PackageId": "website", "Version": ""}],
    )


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "Pool", "type": "WorkerPool", "worker_pool": ""}, "worker_pool"),
        ({"name": "Bad #{name}", "type": "String", "value": "x"}, "name"),
    ],
)
def test_a_bad_variable_is_a_400_and_nothing_is_saved(page_client, administrator, project, data, field):
    response = page_client(administrator).post(f"/{project.space.octopus_id}/projects/{project.pk}/variables/", data)
    assert response.status_code == 400 and f'data-field="{field}">' in response.content.decode()
    assert not Variable.objects.exists()


def test_a_variable_cannot_be_scoped_to_another_spaces_environment_nor_use_its_pool(
    administrator, project, other_space
):
    from infrastructure.models import WorkerPool

    far = catalog.create_environment(actor=administrator, space=other_space, name="Far")
    with pytest.raises(ValidationError) as refused:
        catalog.save_variable(
            actor=administrator,
            project=project,
            name="Pool",
            type="WorkerPool",
            worker_pool=WorkerPool.objects.get(space=other_space, is_default=True),
            environments=[far],
        )
    assert set(refused.value.message_dict) == {"worker_pool", "environments"} and not Variable.objects.exists()


def test_the_same_variable_twice_with_the_same_scope_is_refused(administrator, project, production, staging):
    catalog.save_variable(
        actor=administrator, project=project, name="Url", type="String", value="a", environments=[production]
    )
    catalog.save_variable(
        actor=administrator, project=project, name="Url", type="String", value="b", environments=[staging]
    )
    with pytest.raises(ValidationError, match="already has a variable Url with this scope"):
        catalog.save_variable(
            actor=administrator, project=project, name="url", type="String", value="c", environments=[production]
        )
    assert Variable.objects.count() == 2
