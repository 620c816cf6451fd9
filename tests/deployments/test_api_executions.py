"""The API's executions and library as Octopus automation uses them: interruptions answered (and refused to someone
else once taken), automatic deployments through lifecycle phases, packages pushed, replaced and deleted, tasks
re-run, runbooks run from their published snapshot, the dashboard, and pools and environments reordered."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Deployment, Package, Step
from deployments.services import deploy, lifecycles
from deployments.services.lifecycles import promote_after_task
from deployments.services.orchestrator import run_server_task
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step, log_text

pytestmark = pytest.mark.django_db(transaction=True)


def _zip(name: str, content: str = "echo hi") -> SimpleUploadedFile:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("run.sh", content)
    return SimpleUploadedFile(name, data.getvalue(), content_type="application/zip")


def test_an_interruption_taken_by_one_user_is_refused_to_another_and_abort_fails_the_task(
    api_client, administrator, deployment_creator, project, production
):
    Step.objects.create(
        project=project,
        name="Gate",
        action_type=Step.ActionType.MANUAL,
        location=Step.Location.SERVER,
        instructions="Look at the graphs",
        sort_order=0,
    )
    add_step(project, "After", "echo after the gate")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    run_server_task(task.pk)
    admin, deployer = api_client(administrator), api_client(deployment_creator)
    listed = admin.get(f"/api/interruptions?regarding={task.octopus_id}&pendingOnly=true").json()
    assert listed["TotalResults"] == 1 and admin.get(f"/api/tasks/{task.octopus_id}").json()["HasPendingInterruptions"]
    interruption = listed["Items"][0]
    assert (
        interruption["Form"]["Elements"][0]["Control"]["Text"] == "Look at the graphs"
        and interruption["CanTakeResponsibility"]
    )
    assert deployer.put(f"/api/interruptions/{interruption['Id']}/responsible").json()["HasResponsibility"] is True
    refused = admin.post(f"/api/interruptions/{interruption['Id']}/submit", {"Result": "Proceed"}, format="json")
    assert refused.status_code == 400 and "only they may answer" in refused.json()["Details"]["Interruption"][0]
    assert (
        admin.post(f"/api/interruptions/{interruption['Id']}/submit", {"Result": "Maybe"}, format="json").status_code
        == 400
    )
    answered = deployer.post(
        f"/api/interruptions/{interruption['Id']}/submit", {"Result": "Abort", "Notes": "graphs are red"}, format="json"
    )
    assert answered.status_code == 200 and answered.json()["IsPending"] is False
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == ServerTask.State.FAILED and "after the gate" not in log_text(task)
    assert admin.get(f"/api/interruptions?regarding={task.octopus_id}&pendingOnly=true").json()["TotalResults"] == 0


def test_automatic_environments_are_deployed_when_their_phase_opens(administrator, project, staging, production, space):
    add_step(project, "Hello", "echo hi")
    project.lifecycle = lifecycles.save_lifecycle(
        actor=administrator,
        space=space,
        name="Auto",
        phases=[
            lifecycles.PhaseSpec(name="Test", automatic_environments=[staging]),
            lifecycles.PhaseSpec(name="Live", automatic_environments=[production]),
        ],
    )
    project.save()
    release = deploy.create_release(actor=administrator, project=project)
    first = Deployment.objects.get(release=release)
    assert first.environment == staging  # on creation: the first phase only
    run_server_task(first.task_id)
    [second] = promote_after_task(first.task_id)
    assert second.environment == production and promote_after_task(first.task_id) == []


def test_packages_are_pushed_replaced_ignored_searched_and_deleted(api_client, administrator, space):
    client = api_client(administrator)
    pushed = client.post("/api/packages/raw", {"fileToUpload": _zip("web-app.1.0.0.zip")}, format="multipart")
    assert pushed.status_code == 201 and pushed.json()["Id"] == "packages-web-app.1.0.0"
    again = client.post("/api/packages/raw", {"fileToUpload": _zip("web-app.1.0.0.zip", "new")}, format="multipart")
    assert again.status_code == 400 and "already has web-app 1.0.0" in str(again.json())
    sha = Package.objects.get().sha256
    kept = client.post(
        "/api/packages/raw?overwriteMode=IgnoreIfExists",
        {"fileToUpload": _zip("web-app.1.0.0.zip", "x")},
        format="multipart",
    )
    assert kept.status_code == 200 and Package.objects.get().sha256 == sha
    replaced = client.post(
        "/api/packages/raw?replace=true", {"fileToUpload": _zip("web-app.1.0.0.zip", "newer")}, format="multipart"
    )
    assert replaced.status_code == 200 and Package.objects.get().sha256 != sha and Package.objects.count() == 1
    client.post("/api/packages/raw", {"fileToUpload": _zip("web-app.1.1.0-beta.zip")}, format="multipart")
    assert (
        client.post("/api/packages/raw", {"fileToUpload": _zip("no-version.zip")}, format="multipart").status_code
        == 400
    )
    found = client.get("/api/packages?filter=web&latest=true").json()
    assert [p["Version"] for p in found["Items"]] == ["1.1.0-beta"]
    assert client.get("/api/packages/packages-web-app.1.0.0").json()["Version"] == "1.0.0"
    assert client.delete("/api/packages/packages-web-app.1.0.0").status_code == 204
    assert client.get("/api/packages/packages-web-app.1.0.0").status_code == 404
    assert client.get("/api/feeds/feeds-builtin").json()["FeedType"] == "BuiltIn"


def test_a_finished_task_is_rerun_as_a_new_task(api_client, administrator, project, production):
    add_step(project, "Hello", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    client = api_client(administrator)
    assert client.post(f"/api/tasks/rerun/{task.octopus_id}").status_code == 400  # still queued
    run_server_task(task.pk)
    again = client.post(f"/api/tasks/rerun/{task.octopus_id}")
    assert again.status_code == 201 and again.json()["Id"] != task.octopus_id and again.json()["State"] == "Queued"


def test_a_runbook_runs_its_published_snapshot_not_its_current_process(api_client, administrator, project, production):
    client = api_client(administrator)
    runbook = client.post(f"/api/projects/{project.octopus_id}/runbooks", {"Name": "Rotate"}, format="json").json()
    process_url = f"/api/projects/{project.octopus_id}/runbookProcesses/{runbook['RunbookProcessId']}"
    process = client.get(process_url).json()
    step = {
        "Name": "Say",
        "Actions": [{"ActionType": "Octopus.Script", "Properties": {"Octopus.Action.Script.ScriptBody": "echo v1"}}],
    }
    process = client.put(process_url, {"Version": process["Version"], "Steps": [step]}, format="json").json()
    snapshot = client.post(
        f"/api/projects/{project.octopus_id}/runbookSnapshots?publish=true",
        {"RunbookId": runbook["Id"], "Name": "First"},
        format="json",
    )
    assert snapshot.status_code == 201
    step["Actions"][0]["Properties"]["Octopus.Action.Script.ScriptBody"] = "echo v2"
    step["Id"] = process["Steps"][0]["Id"]
    assert client.put(process_url, {"Version": process["Version"], "Steps": [step]}, format="json").status_code == 200
    made = client.post(
        "/api/runbookRuns/create/v1",
        {"ProjectName": project.slug, "RunbookName": "Rotate", "EnvironmentNames": [production.name]},
        format="json",
    )
    assert made.status_code == 201, made.json()
    task = ServerTask.objects.get(
        pk=ServerTask.pk_from_octopus_id(made.json()["RunbookRunServerTasks"][0]["ServerTaskId"])
    )
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success" and "v1" in log_text(task) and "v2" not in log_text(task)


def test_the_dashboard_shows_the_newest_deployment_per_project_and_environment(
    api_client, administrator, project, production
):
    add_step(project, "Hello", "echo hi")
    for _ in range(2):
        release = deploy.create_release(actor=administrator, project=project)
        run_server_task(deploy.deploy_release(actor=administrator, release=release, environment=production).task_id)
    dashboard = api_client(administrator).get("/api/dashboard").json()
    [item] = dashboard["Items"]
    assert item["ReleaseVersion"] == release.version and item["State"] == "Success" and item["IsCurrent"]
    assert [p["ReleaseVersion"] for p in dashboard["PreviousItems"]] == ["0.0.1"]


def test_pools_and_environments_are_reordered_and_environments_written(api_client, administrator, space, make_pool):
    client = api_client(administrator)
    second = make_pool("Second")
    ids = [p["Id"] for p in client.get("/api/workerpools/all").json()]
    reordered = client.put("/api/workerpools/sortorder", list(reversed(ids)), format="json")
    assert reordered.status_code == 200 and [p["Id"] for p in reordered.json()][0] == second.octopus_id
    assert client.put("/api/workerpools/sortorder", ids[:1], format="json").status_code == 400
    made = [client.post("/api/environments", {"Name": n}, format="json").json() for n in ("Dev", "Live")]
    renamed = client.put(
        f"/api/environments/{made[0]['Id']}", {"Name": "Development", "Description": "first"}, format="json"
    )
    assert renamed.status_code == 200 and renamed.json()["Name"] == "Development"
    order = client.put("/api/environments/sortorder", [made[1]["Id"], made[0]["Id"]], format="json").json()
    assert [e["Name"] for e in order] == ["Live", "Development"]
    assert client.delete(f"/api/environments/{made[1]['Id']}").status_code == 204


def test_deployment_targets_are_written_and_found_through_machines(api_client, administrator, production):
    client = api_client(administrator)
    body = {
        "Name": "web-01",
        "Roles": ["web"],
        "EnvironmentIds": [production.octopus_id],
        "Endpoint": {"CommunicationStyle": "None"},
    }
    made = client.post("/api/machines", body, format="json")
    assert made.status_code == 201, made.json()
    assert made.json()["Endpoint"]["CommunicationStyle"] == "None" and made.json()["EnvironmentIds"] == [
        production.octopus_id
    ]
    assert [m["Name"] for m in client.get(f"/api/environments/{production.octopus_id}/machines").json()["Items"]] == [
        "web-01"
    ]
    assert client.get("/api/machines?roles=db").json()["TotalResults"] == 0
    bad = client.post("/api/machines", {**body, "Name": "web-02", "Roles": "web"}, format="json")
    assert bad.status_code == 400 and "Roles" in bad.json()["Details"]
    moved = client.put(
        f"/api/machines/{made.json()['Id']}", {**body, "Roles": ["web", "api"], "IsDisabled": True}, format="json"
    )
    assert moved.status_code == 200 and moved.json()["Roles"] == ["web", "api"] and moved.json()["IsDisabled"] is True
    assert client.delete(f"/api/machines/{made.json()['Id']}").status_code == 204


def test_the_task_page_answers_through_the_same_interruption(
    api_client, page_client, administrator, deployment_creator, project_viewer, project, production, space
):
    Step.objects.create(
        project=project,
        name="Gate",
        action_type=Step.ActionType.MANUAL,
        location=Step.Location.SERVER,
        instructions="Check",
        sort_order=0,
    )
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    run_server_task(task.pk)
    url = f"/{space.octopus_id}/tasks/{task.pk}/intervention/"
    page_client(project_viewer).post(url, {"result": "Proceed"})  # refused: the page says why, and nothing is answered
    task.refresh_from_db()
    assert task.pending_interruption and task.interruptions.get().is_pending
    [interruption] = (
        api_client(deployment_creator).get(f"/api/interruptions?regarding={task.octopus_id}").json()["Items"]
    )
    api_client(deployment_creator).put(f"/api/interruptions/{interruption['Id']}/responsible")
    page_client(administrator).post(url, {"result": "Proceed", "note": "mine now?"})
    task.refresh_from_db()
    assert task.pending_interruption  # someone else has responsibility: nothing was answered
    page_client(deployment_creator).post(url, {"result": "Proceed", "note": "checked"})
    answered = api_client(administrator).get(f"/api/interruptions/{interruption['Id']}").json()
    assert answered["IsPending"] is False and answered["Form"]["Values"] == {
        "Instructions": None,
        "Notes": "checked",
        "Result": "Proceed",
    }


def test_the_built_in_feed_searches_package_ids_and_versions(api_client, administrator):
    client = api_client(administrator)
    for name in ("api.1.0.0.zip", "api.1.1.0.zip", "web.2.0.0.zip"):
        assert client.post("/api/packages/raw", {"fileToUpload": _zip(name)}, format="multipart").status_code == 201
    found = client.get("/api/feeds/feeds-builtin/packages/search?term=ap").json()
    assert [(p["Id"], p["LatestVersion"]) for p in found["Items"]] == [("api", "1.1.0")]
    versions = client.get("/api/feeds/feeds-builtin/packages/versions?packageId=api").json()
    assert [v["Version"] for v in versions["Items"]] == ["1.1.0", "1.0.0"]
    assert client.get("/api/feeds/feeds-builtin/packages/versions?packageId=api&filter=1.1").json()["TotalResults"] == 1
    assert client.get("/api/feeds/feeds-builtin/packages/versions").status_code == 400
    assert client.get("/api/feeds/feeds-other/packages/versions?packageId=api").status_code == 404


def test_use_guided_failure_through_the_api_waits_for_guidance_answered_at_the_interruption(
    api_client, administrator, project, production
):
    add_step(project, "Broken", "echo broken-ran; exit 1")
    add_step(project, "Next", "echo next-ran")
    client = api_client(administrator)
    release = deploy.create_release(actor=administrator, project=project)
    made = client.post(
        "/api/deployments",
        {"ReleaseId": release.octopus_id, "EnvironmentId": production.octopus_id, "UseGuidedFailure": True},
        format="json",
    )
    assert made.status_code == 201 and made.json()["UseGuidedFailure"] is True
    task = ServerTask.objects.get(pk=ServerTask.pk_from_octopus_id(made.json()["TaskId"]))
    run_server_task(task.pk)
    [interruption] = client.get(f"/api/interruptions?regarding={task.octopus_id}&pendingOnly=true").json()["Items"]
    assert interruption["Type"] == "GuidedFailure" and interruption["Form"]["Elements"][-1]["Name"] == "Guidance"
    assert [b["Value"] for b in interruption["Form"]["Elements"][-1]["Control"]["Buttons"]] == [
        "Retry",
        "Ignore",
        "Fail",
    ]
    wrong = client.post(f"/api/interruptions/{interruption['Id']}/submit", {"Result": "Proceed"}, format="json")
    assert wrong.status_code == 400 and "Guidance" in wrong.json()["Details"]
    answered = client.post(
        f"/api/interruptions/{interruption['Id']}/submit", {"Guidance": "Ignore", "Notes": "known issue"}, format="json"
    )
    assert answered.status_code == 200 and answered.json()["Form"]["Values"]["Guidance"] == "Ignore"
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == ServerTask.State.SUCCESS and "next-ran" in log_text(task)


def test_an_environment_takes_use_guided_failure_through_the_api(api_client, administrator, production):
    client = api_client(administrator)
    body = client.get(f"/api/environments/{production.octopus_id}").json()
    changed = client.put(
        f"/api/environments/{production.octopus_id}", {**body, "UseGuidedFailure": True}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["UseGuidedFailure"] is True
    production.refresh_from_db()
    assert production.use_guided_failure
    made = client.post("/api/environments", {"Name": "Staging", "UseGuidedFailure": True}, format="json")
    assert made.status_code == 201 and made.json()["UseGuidedFailure"] is True
