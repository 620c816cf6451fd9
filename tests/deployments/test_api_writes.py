"""Writing through the API as Octopus automation does: two editors of one process (one wins, one gets 409 naming
both versions), promotion refused by the lifecycle (API and page), and strict JSON types that change nothing."""

import threading

import pytest
from django.db import connection

from deployments.models import Step
from deployments.services import deploy, lifecycles
from infrastructure.models import WorkerPool
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db(transaction=True)


def _step(name: str, body: str) -> dict:
    return {
        "Name": name,
        "Properties": {},
        "Actions": [
            {
                "Name": name,
                "ActionType": "Octopus.Script",
                "WorkerPoolId": None,
                "Properties": {"Octopus.Action.RunOnServer": "true", "Octopus.Action.Script.ScriptBody": body},
            }
        ],
    }


def test_two_clients_put_the_same_process_version_and_exactly_one_gets_409(api_client, administrator, project):
    url = f"/api/projects/{project.octopus_id}/deploymentprocesses"
    first, second = api_client(administrator), api_client(administrator)
    version = first.get(url).json()["Version"]
    results = []

    def put(client, name):
        try:
            results.append(client.put(url, {"Version": version, "Steps": [_step(name, f"echo {name}")]}, format="json"))
        finally:
            connection.close()

    threads = [threading.Thread(target=put, args=(c, n)) for c, n in ((first, "Alpha"), (second, "Beta"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [200, 409]
    refused = next(r for r in results if r.status_code == 409).json()
    assert f"Version {version}" in refused["ErrorMessage"] and f"Version {version + 1}" in refused["ErrorMessage"]
    winner = next(r for r in results if r.status_code == 200).json()
    assert winner["Version"] == version + 1 and [s["Name"] for s in first.get(url).json()["Steps"]] == [
        winner["Steps"][0]["Name"]
    ]
    assert Step.objects.filter(project=project).count() == 1


def test_a_stale_variable_set_put_is_409_and_sensitive_values_stay_write_only(
    api_client, administrator, project, production
):
    client = api_client(administrator)
    url = f"/api/variables/variableset-{project.octopus_id}"
    current = client.get(url).json()
    saved = client.put(
        url,
        {
            "Version": current["Version"],
            "Variables": [
                {"Name": "Password", "Value": "hunter2", "Type": "Sensitive", "IsSensitive": True},
                {"Name": "Colour", "Value": "blue", "Scope": {"Environment": [production.octopus_id]}},
            ],
        },
        format="json",
    )
    assert saved.status_code == 200, saved.json()
    assert {v["Name"]: v["Value"] for v in saved.json()["Variables"]} == {"Password": None, "Colour": "blue"}
    stale = client.put(url, {"Version": current["Version"], "Variables": []}, format="json")
    assert stale.status_code == 409 and project.variables.count() == 2
    # Sending the set back as read (the sensitive value null) keeps the secret.
    again = client.put(url, saved.json(), format="json")
    assert again.status_code == 200 and again.json()["Version"] == saved.json()["Version"] + 1
    assert "hunter2" not in str(again.json()) and project.variables.get(name="Password").value != ""


def test_promotion_is_refused_until_the_earlier_phase_succeeded_naming_the_phase(
    api_client, page_client, administrator, project, staging, production, space
):
    add_step(project, "Hello", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    response = api_client(administrator).post(
        "/api/deployments", {"ReleaseId": release.octopus_id, "EnvironmentId": production.octopus_id}, format="json"
    )
    assert response.status_code == 400 and "until the phase Staging is complete" in str(response.json())
    page = page_client(administrator).post(
        f"/{space.octopus_id}/projects/{project.pk}/releases/{release.pk}/deploy/", {"environment": production.pk}
    )
    assert page.status_code == 400 and "until the phase Staging is complete" in page.content.decode()
    shown = (
        page_client(administrator)
        .get(f"/{space.octopus_id}/projects/{project.pk}/releases/{release.pk}/deploy/")
        .content.decode()
    )
    assert (
        'data-environment="Staging" data-state="Open"' in shown
        and 'data-environment="Production" data-state="Locked"' in shown
    )
    assert not release.deployments.exists()
    template = api_client(administrator).get(f"/api/releases/{release.octopus_id}/deployments/template").json()
    assert [e["Name"] for e in template["PromoteTo"]] == ["Staging"]


def test_an_optional_phase_may_be_skipped(administrator, project, staging, production, space):
    add_step(project, "Hello", "echo hi")
    project.lifecycle = lifecycles.save_lifecycle(
        actor=administrator,
        space=space,
        name="Skippable",
        phases=[
            lifecycles.PhaseSpec(name="Test", optional_environments=[staging], is_optional_phase=True),
            lifecycles.PhaseSpec(name="Live", optional_environments=[production]),
        ],
    )
    project.save()
    release = deploy.create_release(actor=administrator, project=project)
    assert deploy.deploy_release(actor=administrator, release=release, environment=production).task.state == "Queued"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"Name": "T2", "IsDefault": "yes"}, "IsDefault"),
        ({"Name": 123}, "Name"),
        ({"Name": "T3", "SortOrder": "4"}, "SortOrder"),
    ],
)
def test_a_wrong_json_type_is_400_naming_the_field_and_changes_nothing(api_client, administrator, space, body, field):
    default_before = WorkerPool.objects.get(space=space, is_default=True).pk
    count = WorkerPool.objects.count()
    response = api_client(administrator).post("/api/workerpools", body, format="json")
    assert response.status_code == 400 and field in response.json()["Details"], response.json()
    assert (
        WorkerPool.objects.count() == count
        and WorkerPool.objects.get(space=space, is_default=True).pk == default_before
    )


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/api/environments", {"Name": 5}, "Name"),
        ("/api/projects", {"Name": "P", "IsDisabled": "false"}, "IsDisabled"),
        (
            "/api/lifecycles",
            {"Name": "L", "Phases": [{"Name": "A", "IsOptionalPhase": "true"}]},
            "Phases[0].IsOptionalPhase",
        ),
        (
            "/api/deployments/create/untenanted/v1",
            {"ProjectName": "x", "ReleaseVersion": "1", "EnvironmentNames": "Dev"},
            "EnvironmentNames",
        ),
    ],
)
def test_new_endpoints_are_strict_too(api_client, administrator, url, body, field):
    response = api_client(administrator).post(url, body, format="json")
    assert response.status_code == 400 and field in response.json()["Details"], response.json()


def test_projects_are_found_by_slug_and_new_ones_get_the_default_group_lifecycle_and_channel(
    api_client, administrator, space
):
    client = api_client(administrator)
    made = client.post("/api/projects", {"Name": "Web Shop"}, format="json").json()
    assert client.get("/api/projects/web-shop").json()["Id"] == made["Id"]
    groups = {g["Id"]: g["Name"] for g in client.get("/api/projectgroups").json()["Items"]}
    assert groups[made["ProjectGroupId"]] == "Default Project Group"
    assert client.get(f"/api/lifecycles/{made['LifecycleId']}").json()["Name"] == "Default Lifecycle"
    assert [c["Name"] for c in client.get(f"/api/projects/{made['Id']}/channels").json()["Items"]] == ["Default"]


def test_a_channel_with_its_own_lifecycle_governs_its_releases(
    api_client, administrator, project, staging, production, space
):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    hotfix = client.post(
        "/api/lifecycles",
        {
            "Name": "Hotfix",
            "Phases": [{"Name": "Straight to production", "OptionalDeploymentTargets": [production.octopus_id]}],
        },
        format="json",
    )
    assert hotfix.status_code == 201, hotfix.json()
    channel = client.post(
        "/api/channels",
        {"Name": "Hotfixes", "ProjectId": project.octopus_id, "LifecycleId": hotfix.json()["Id"]},
        format="json",
    )
    assert channel.status_code == 201, channel.json()
    made = client.post(
        "/api/releases/create/v1",
        {"ProjectName": project.name, "ReleaseVersion": "1.0.1", "ChannelName": "Hotfixes"},
        format="json",
    ).json()
    assert client.get(f"/api/releases/{made['ReleaseId']}").json()["ChannelId"] == channel.json()["Id"]
    deployed = client.post(
        "/api/deployments/create/untenanted/v1",
        {"ProjectName": project.name, "ReleaseVersion": "1.0.1", "EnvironmentNames": ["Production"]},
        format="json",
    )
    assert deployed.status_code == 201, deployed.json()
    staged = client.post(
        "/api/deployments/create/untenanted/v1",
        {"ProjectName": project.name, "ReleaseVersion": "1.0.1", "EnvironmentNames": ["Staging"]},
        format="json",
    )
    assert staged.status_code == 400 and "not in any phase of the lifecycle Hotfix" in str(staged.json())
    in_use = client.delete(f"/api/lifecycles/{hotfix.json()['Id']}")
    assert in_use.status_code == 400 and "channel Hotfixes" in str(in_use.json())
    assert client.delete(f"/api/channels/{channel.json()['Id']}").status_code == 400  # it has a release
    assert (
        client.put(
            f"/api/channels/{channel.json()['Id']}",
            {"Name": "Hotfixes", "ProjectId": project.octopus_id, "Rules": [{"VersionRange": "[1.0,2.0)"}]},
            format="json",
        ).status_code
        == 400
    )


def test_a_disabled_project_is_not_deployed(api_client, administrator, project, production):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    disabled = client.put(f"/api/projects/{project.slug}", {"Name": project.name, "IsDisabled": True}, format="json")
    assert disabled.status_code == 200 and disabled.json()["IsDisabled"] is True
    refused = client.post(
        "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json"
    )
    assert refused.status_code == 400 and "is disabled" in str(refused.json())


def test_a_worker_pool_variable_scoped_per_environment_chooses_the_steps_pool(
    api_client, administrator, project, production, make_pool
):
    pool = make_pool("Production workers")
    client = api_client(administrator)
    url = f"/api/variables/variableset-{project.octopus_id}"
    bad = client.put(
        url,
        {"Version": 0, "Variables": [{"Name": "Pool", "Type": "WorkerPool", "Value": "WorkerPools-999999"}]},
        format="json",
    )
    assert bad.status_code == 400 and "Variables[0].Value" in bad.json()["Details"]
    saved = client.put(
        url,
        {
            "Version": 0,
            "Variables": [
                {
                    "Name": "Pool",
                    "Type": "WorkerPool",
                    "Value": pool.octopus_id,
                    "Scope": {"Environment": [production.octopus_id]},
                }
            ],
        },
        format="json",
    )
    assert saved.status_code == 200 and saved.json()["Variables"][0]["Value"] == pool.octopus_id
    step = {
        "Name": "Run",
        "Actions": [
            {
                "ActionType": "Octopus.Script",
                "WorkerPoolVariable": "Pool",
                "Properties": {"Octopus.Action.Script.ScriptBody": "echo hi"},
            }
        ],
    }
    process = client.put(
        f"/api/projects/{project.octopus_id}/deploymentprocesses", {"Version": 0, "Steps": [step]}, format="json"
    )
    assert process.status_code == 200, process.json()
    action = process.json()["Steps"][0]["Actions"][0]
    assert action["WorkerPoolVariable"] == "Pool" and action["WorkerPoolId"] is None
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    deployment = client.post(
        "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json"
    )
    task = ServerTask.objects.get(pk=ServerTask.pk_from_octopus_id(deployment.json()["TaskId"]))
    assert list(task.worker_pools.all()) == [pool]


def test_the_default_lifecycle_shows_every_environment_in_order_and_keeps_following_them(
    api_client, administrator, space
):
    client = api_client(administrator)
    for name in ("Dev", "Test"):
        client.post("/api/environments", {"Name": name}, format="json")
    default = next(lc for lc in client.get("/api/lifecycles").json()["Items"] if lc["Name"] == "Default Lifecycle")
    assert [p["Name"] for p in default["Phases"]] == ["Dev", "Test"]
    assert client.put(f"/api/lifecycles/{default['Id']}", default, format="json").status_code == 200  # a round trip
    client.post("/api/environments", {"Name": "Live"}, format="json")
    again = client.get(f"/api/lifecycles/{default['Id']}").json()
    assert [p["Name"] for p in again["Phases"]] == ["Dev", "Test", "Live"]
    assert [p["OptionalDeploymentTargets"] for p in again["Phases"]][2][0].startswith("Environments-")


def test_the_deployment_template_says_when_the_process_or_variables_changed_since_the_release(
    api_client, administrator, project, production
):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    url = f"/api/releases/{release['Id']}/deployments/template"
    assert client.get(url).json()["IsDeploymentProcessModified"] is False
    assert client.get(url).json()["IsVariableSetModified"] is False
    add_step(project, "More", "echo more")
    client.put(
        f"/api/variables/variableset-{project.octopus_id}",
        {"Version": 0, "Variables": [{"Name": "A", "Value": "1"}]},
        format="json",
    )
    template = client.get(url).json()
    assert template["IsDeploymentProcessModified"] is True and template["IsVariableSetModified"] is True
