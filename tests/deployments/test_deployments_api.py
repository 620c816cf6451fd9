"""Octopus automation against Reef: create a release, deploy it, follow the task."""

import pytest

from deployments.services.orchestrator import run_server_task
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_a_release_deploy_it_and_read_the_task(api_client, administrator, project, production, space):
    add_step(project, "Hello", "echo api hello")
    client = api_client(administrator)
    release = client.post(
        f"/api/{space.octopus_id}/releases", {"ProjectId": project.octopus_id, "Version": "1.2.3"}, format="json"
    )
    assert release.status_code == 201, release.json()
    assert release.json()["Version"] == "1.2.3" and release.json()["ProjectId"] == project.octopus_id
    deployment = client.post(
        "/api/deployments", {"ReleaseId": release.json()["Id"], "EnvironmentId": production.octopus_id}, format="json"
    )
    assert deployment.status_code == 201, deployment.json()
    task_id = deployment.json()["TaskId"]
    assert client.get(f"/api/tasks/{task_id}").json()["State"] == "Queued"
    run_server_task(ServerTask.pk_from_octopus_id(task_id))
    assert client.get(f"/api/tasks/{task_id}").json()["State"] == "Success"
    assert "api hello" in b"".join(client.get(f"/api/tasks/{task_id}/raw").streaming_content).decode()
    process = client.get(f"/api/projects/{project.octopus_id}/deploymentprocesses").json()
    assert (
        process["Steps"][0]["Actions"][0]["Properties"]["Octopus.Action.RunOnServer"] == "true"
    )  # Octopus writes it lower-case
    assert process["Steps"][0]["Actions"][0]["WorkerPoolId"] is None  # the server: the default pool
    assert client.get(f"/api/{space.octopus_id}/projects/{project.octopus_id}/releases").json()["TotalResults"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"EnvironmentId": "Environments-1"}, "ReleaseId"),
        ({"ReleaseId": "Releases-999999", "EnvironmentId": "x"}, "ReleaseId"),
        ({"ReleaseId": "nonsense", "EnvironmentId": []}, "EnvironmentId"),
    ],
)
def test_bad_deployment_requests_get_400_naming_the_field_and_queue_nothing(api_client, administrator, body, field):
    response = api_client(administrator).post("/api/deployments", body, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    assert not ServerTask.objects.exists()


def test_a_second_release_with_the_same_version_is_refused(api_client, administrator, project):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    assert (
        client.post("/api/releases", {"ProjectId": project.octopus_id, "Version": "1.0"}, format="json").status_code
        == 201
    )
    again = client.post("/api/releases", {"ProjectId": project.octopus_id, "Version": "1.0"}, format="json")
    assert again.status_code == 400 and "already has a release 1.0" in str(again.json())


def test_a_project_viewer_may_read_but_not_deploy(api_client, administrator, project_viewer, project, production):
    add_step(project, "Hello", "echo hi")
    admin = api_client(administrator)
    release = admin.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    viewer = api_client(project_viewer)
    assert viewer.get("/api/projects").json()["TotalResults"] == 1
    refused = viewer.post(
        "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json"
    )
    assert refused.status_code == 403
    assert not ServerTask.objects.exists()


def test_an_outsider_sees_no_projects(api_client, outsider, project):
    assert api_client(outsider).get(f"/api/{project.space.octopus_id}/projects").status_code in (403, 404)


def test_the_script_console_through_the_api_runs_on_the_named_workers(
    api_client, administrator, agents, make_pool, space
):
    worker = agents.start("api-box", [make_pool("P")])
    client = api_client(administrator)
    queued = client.post(
        "/api/tasks",
        {
            "Name": "AdHocScript",
            "Arguments": {
                "ScriptBody": "echo from the api on $(hostname)",
                "Syntax": "Bash",
                "MachineIds": [worker.octopus_id],
            },
        },
        format="json",
    )
    assert queued.status_code == 201, queued.json()
    run_server_task(ServerTask.pk_from_octopus_id(queued.json()["Id"]))
    assert "from the api on" in b"".join(client.get(f"/api/tasks/{queued.json()['Id']}/raw").streaming_content).decode()


@pytest.mark.parametrize(
    "arguments, field",
    [
        ({"ScriptBody": "echo", "Syntax": "Cobol", "WorkerPoolId": "WorkerPools-1"}, "Arguments.Syntax"),
        ({"ScriptBody": "", "Syntax": "Bash", "WorkerPoolId": "WorkerPools-1"}, "Arguments.ScriptBody"),
        ({"ScriptBody": "echo", "MachineIds": ["Workers-999999"]}, "Arguments.MachineIds"),
        ({"ScriptBody": "echo", "WorkerPoolId": "WorkerPools-999999"}, "Arguments.WorkerPoolId"),
        ("not an object", "Arguments"),
    ],
)
def test_bad_script_console_requests_are_400_naming_the_field(
    api_client, administrator, default_pool, arguments, field
):
    if isinstance(arguments, dict) and arguments.get("WorkerPoolId") == "WorkerPools-1":
        arguments["WorkerPoolId"] = default_pool.octopus_id
    response = api_client(administrator).post(
        "/api/tasks", {"Name": "AdHocScript", "Arguments": arguments}, format="json"
    )
    assert response.status_code == 400 and field in str(response.json()), response.json()
    assert not ServerTask.objects.exists()


def test_task_details_give_the_activity_tree_and_lines_after_a_sequence(api_client, administrator, project, production):
    add_step(project, "Hello", "echo one; echo two")
    client = api_client(administrator)
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    task_id = client.post(
        "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json"
    ).json()["TaskId"]
    run_server_task(ServerTask.pk_from_octopus_id(task_id))
    details = client.get(f"/api/tasks/{task_id}/details").json()
    root = details["ActivityLogs"][0]
    step = root["Children"][0]
    worker = step["Children"][0]
    assert (root["Status"], step["Name"], step["Status"], worker["Name"]) == (
        "Success",
        "Step 1: Hello",
        "Success",
        "the built-in worker",
    )
    assert [e["MessageText"] for e in worker["LogElements"]] == ["one", "two"]
    last = worker["LogElements"][0]["Sequence"]
    later = client.get(f"/api/tasks/{task_id}/details?after={last}").json()["ActivityLogs"][0]["Children"][0][
        "Children"
    ][0]
    assert [e["MessageText"] for e in later["LogElements"]] == ["two"]
    assert client.get(f"/api/tasks/{task_id}/details?after=x").status_code == 400


def test_tasks_filter_by_project_environment_and_pool_and_refuse_bad_filters(
    api_client, administrator, project, production
):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    client.post("/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json")
    assert (
        client.get(f"/api/tasks?project={project.octopus_id}&environment={production.octopus_id}").json()[
            "TotalResults"
        ]
        == 1
    )
    assert client.get("/api/tasks?project=Projects-999999").json()["TotalResults"] == 0
    bad = client.get("/api/tasks?states=Sleeping&environment=nope")
    assert bad.status_code == 400 and "states" in str(bad.json()) and "environment" in str(bad.json())


def test_cancel_through_the_api_needs_task_cancel(api_client, administrator, project_viewer, project, production):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    release = client.post("/api/releases", {"ProjectId": project.octopus_id}, format="json").json()
    task_id = client.post(
        "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": production.octopus_id}, format="json"
    ).json()["TaskId"]
    assert api_client(project_viewer).post(f"/api/tasks/{task_id}/cancel").status_code == 403
    assert client.post(f"/api/tasks/{task_id}/cancel").json()["State"] == "Canceled"


def test_a_runbook_runs_task_never_shows_its_variable_snapshot(api_client, administrator, project, production):
    from deployments.models import Runbook, Step, Variable
    from deployments.services import deploy
    from portal.encryption import encrypt

    Variable.objects.create(project=project, name="Token", type="Sensitive", value=encrypt("s3cret"))
    runbook = Runbook.objects.create(project=project, name="Rotate")
    Step.objects.create(project=project, runbook=runbook, name="Go", location="Server", script_body="echo")
    task = deploy.run_runbook(actor=administrator, runbook=runbook, environment=production).task
    arguments = api_client(administrator).get(f"/api/tasks/{task.octopus_id}").json()["Arguments"]
    assert arguments == {"RunbookId": runbook.octopus_id, "EnvironmentId": production.octopus_id}


def test_a_script_console_task_whose_worker_was_deleted_fails_saying_so(
    api_client, administrator, agents, make_pool, space
):
    worker = agents.start("short-lived", [make_pool("P")])
    task_id = (
        api_client(administrator)
        .post(
            "/api/tasks",
            {
                "Name": "AdHocScript",
                "Arguments": {"ScriptBody": "echo", "Syntax": "Bash", "MachineIds": [worker.octopus_id]},
            },
            format="json",
        )
        .json()["Id"]
    )
    worker_id = worker.octopus_id
    worker.delete()
    run_server_task(ServerTask.pk_from_octopus_id(task_id))
    task = ServerTask.objects.get(pk=ServerTask.pk_from_octopus_id(task_id))
    assert task.state == "Failed" and f"named workers that no longer exist: {worker_id}" in task.error_message
