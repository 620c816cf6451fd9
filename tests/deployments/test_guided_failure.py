"""Interruptions as Octopus shows them: a task waiting for an answer is Executing with a pending interruption;
manual interventions with responsible teams, "assign to me", Proceed/Abort with notes; guided failure with
Retry (on workers selected again), Ignore and Fail; every answer in the log and the audit trail."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from deployments.models import Environment, Interruption, WorkerLease
from deployments.services import deploy
from deployments.services.interruptions import submit_interruption, take_interruption_responsibility
from deployments.services.orchestrator import run_server_task
from deployments.services.tasks import cancel_server_task
from portal.models import Event
from servertasks.models import ServerTask
from tests.conftest import make_person, team_named
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)


def step_statuses(task):
    return dict(
        task.activity_nodes.filter(parent__parent__isnull=True, parent__isnull=False).values_list("name", "status")
    )


def answer_from_the_page(page_client, user, task, **form):
    response = page_client(user).post(reverse("task-intervention", args=[task.space.octopus_id, task.pk]), form)
    assert response.status_code == 302
    task.refresh_from_db()
    return task


@pytest.fixture
def guided(production) -> Environment:
    production.use_guided_failure = True
    production.save()
    return production


def test_a_failed_step_waits_for_guidance_and_retry_runs_it_again(
    administrator, project, guided, shared_folder, page_client, api_client
):
    marker = shared_folder / "fixed"
    add_step(project, "Flaky", f'if [ ! -f {marker} ]; then echo "not yet"; exit 3; fi; echo "worked this time"')
    add_step(project, "After", "echo after")
    task = deploy_and_run(administrator, project, guided)
    started = task.started

    # Waiting, as Octopus shows it.
    assert task.state == "Executing" and task.has_pending_interruptions and not task.server_node
    assert not WorkerLease.objects.filter(task=task).exists()
    interruption = Interruption.objects.get(task=task, is_pending=True)
    assert interruption.type == "GuidedFailure" and interruption.results == ["Retry", "Ignore", "Fail"]
    body = api_client(administrator).get(f"/api/tasks/{task.octopus_id}").json()
    assert body["State"] == "Executing" and body["HasPendingInterruptions"] is True and not body["IsCompleted"]
    page = page_client(administrator).get(reverse("task", args=[task.space.octopus_id, task.pk])).content.decode()
    assert (
        'id="intervention"' in page
        and ">Retry</button>" in page
        and ">Ignore</button>" in page
        and ">Fail</button>" in page
    )
    assert "after" not in log_text(task).splitlines()

    marker.touch()
    task = answer_from_the_page(page_client, administrator, task, result="Retry", note="fixed the disk")
    assert task.state == "Queued" and not task.has_pending_interruptions
    run_server_task(task.pk)
    task.refresh_from_db()
    log = log_text(task)
    assert task.state == "Success", log
    assert task.started == started  # StartTime kept across the pause
    assert "not yet" in log and "worked this time" in log and "after" in log.splitlines()
    assert "Administrator chose to retry. fixed the disk" in log
    assert log.count("Step 1 'Flaky': the built-in worker was chosen because") == 2  # selected again for the retry
    assert step_statuses(task) == {"Step 1: Flaky": "Success", "Step 2: After": "Success"}
    assert Event.objects.filter(message__contains="chose to retry").exists()


def test_ignore_carries_on_and_fail_fails(administrator, project, guided):
    add_step(project, "Broken", "exit 1")
    add_step(project, "Next", "echo next-ran")
    task = deploy_and_run(administrator, project, guided)
    submit_interruption(interruption=task.interruptions.get(), user=administrator, action="Ignore")
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success" and task.has_warnings and "next-ran" in log_text(task)
    assert step_statuses(task) == {"Step 1: Broken": "SuccessWithWarning", "Step 2: Next": "Success"}

    task = deploy_and_run(administrator, project, guided)
    submit_interruption(interruption=task.interruptions.get(), user=administrator, action="Fail", note="give up")
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Failed" and "Step 'Broken' failed." in task.error_message and "next-ran" not in log_text(task)
    assert step_statuses(task) == {"Step 1: Broken": "Failed", "Step 2: Next": "Skipped"}


def test_guided_failure_can_be_asked_for_by_one_deployment(administrator, project, production):
    add_step(project, "Broken", "exit 1")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(
        actor=administrator, release=release, environment=production, use_guided_failure=True
    ).task
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Executing" and task.interruptions.get().type == "GuidedFailure"
    # Without it, the same failure just fails.
    assert deploy_and_run(administrator, project, production).state == "Failed"


def test_a_manual_intervention_with_responsible_teams(administrator, space, project, production, page_client):
    approver = make_person("approver", "Deployment creator", space)
    colleague = make_person("colleague", "Deployment creator", space)
    other = make_person("other", "Deployment creator", space)
    team = team_named("Deployment creator team (approver)")
    team.members.add(colleague)
    add_step(
        project,
        "Approve",
        action_type="Octopus.Manual",
        instructions="Check the numbers",
        body="",
        responsible_teams=[team.octopus_id],
    )
    add_step(project, "Ship", "echo shipped")
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Executing" and task.pending_interruption == "Check the numbers"
    assert step_statuses(task)["Step 1: Approve"] == "Running"  # waiting, not Success before anyone answers
    page = page_client(approver).get(reverse("task", args=[task.space.octopus_id, task.pk])).content.decode()
    assert '<span class="badge text-bg-warning step-waiting">Waiting</span>' in page and "Waiting for an answer" in page
    assert 'id="assign-to-me"' in page and "Check the numbers" in page
    interruption = task.interruptions.get()

    with pytest.raises(PermissionDenied):
        take_interruption_responsibility(interruption=interruption, user=other)
    task = answer_from_the_page(page_client, other, task, result="Proceed")
    assert task.has_pending_interruptions  # refused: not in a responsible team

    task = answer_from_the_page(page_client, approver, task, assign="1")
    interruption.refresh_from_db()
    assert interruption.responsible_user == approver
    with pytest.raises(Exception, match="Approver is responsible"):
        submit_interruption(interruption=interruption, user=colleague, action="Proceed")

    task = answer_from_the_page(page_client, approver, task, result="Proceed", note="numbers add up")
    run_server_task(task.pk)
    task.refresh_from_db()
    log = log_text(task)
    assert task.state == "Success", log
    assert "Approver took responsibility for: Manual intervention: Approve" in log
    assert "Approver chose to proceed. numbers add up" in log and "shipped" in log
    assert step_statuses(task) == {"Step 1: Approve": "Success", "Step 2: Ship": "Success"}
    messages = list(Event.objects.values_list("message", flat=True))
    assert any("took responsibility" in m for m in messages) and any(
        "chose to proceed" in m and "numbers add up" in m for m in messages
    )
    interruption.refresh_from_db()
    assert not interruption.is_pending and interruption.result == "Proceed" and interruption.note == "numbers add up"


def test_an_answer_must_be_one_the_interruption_offers_and_is_given_once(administrator, project, production):
    add_step(project, "Approve", action_type="Octopus.Manual", instructions="Go?", body="")
    task = deploy_and_run(administrator, project, production)
    interruption = task.interruptions.get()
    with pytest.raises(Exception, match="Choose one of Proceed, Abort"):
        submit_interruption(interruption=interruption, user=administrator, action="Retry")
    submit_interruption(interruption=interruption, user=administrator, action="Abort")
    with pytest.raises(Exception, match="already been answered"):
        submit_interruption(interruption=interruption, user=administrator, action="Proceed")


def test_canceling_a_waiting_task_ends_it_at_once(administrator, project, production):
    add_step(project, "Approve", action_type="Octopus.Manual", instructions="Go?", body="")
    task = deploy_and_run(administrator, project, production)
    task = cancel_server_task(task=task, actor=administrator)
    assert task.state == "Canceled" and not task.has_pending_interruptions
    assert not task.interruptions.filter(is_pending=True).exists()
    assert not task.activity_nodes.filter(status="Running").exists()
    assert ServerTask.objects.get(pk=task.pk).completed is not None


def test_the_pages_set_guided_failure_responsible_teams_and_a_script_from_a_package(
    administrator, space, project, production, page_client
):
    client = page_client(administrator)
    response = client.post(
        f"/{space.octopus_id}/infrastructure/environments/{production.pk}/",
        {"name": "Production", "description": "", "use_guided_failure": "1"},
    )
    assert response.status_code == 302
    production.refresh_from_db()
    assert production.use_guided_failure
    assert Event.objects.filter(message="Guided failure was turned on for Production").exists()

    team = make_person("approver", "Deployment creator", space) and team_named("Deployment creator team (approver)")
    base = f"/{space.octopus_id}/projects/{project.pk}/steps/add/"
    common = {"location": "Server", "condition": "Success", "syntax": "Bash", "max_parallelism": 10}
    client.post(
        base,
        {
            **common,
            "name": "Approve",
            "action_type": "Octopus.Manual",
            "instructions": "Look",
            "responsible_teams": [team.octopus_id],
        },
    )
    assert project.steps.get(name="Approve").responsible_teams == [team.octopus_id]
    refused = client.post(
        base,
        {
            **common,
            "name": "Packaged",
            "action_type": "Octopus.Script",
            "script_source": "Package",
            "script_file_name": "../outside.sh",
        },
    )
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "A script from a package needs a referenced package." in page and "path inside the package" in page
    assert not project.steps.filter(name="Packaged").exists()


def test_octopus_shaped_answers_for_the_interruptions_api(administrator, project, guided):
    from deployments.services.interruptions import can_take_responsibility, submit_interruption_form

    add_step(project, "Broken", "exit 1")
    task = deploy_and_run(administrator, project, guided)
    interruption = task.interruptions.get()
    assert can_take_responsibility(interruption=interruption, user=administrator)
    with pytest.raises(Exception, match="Choose one of Retry, Ignore, Fail"):
        submit_interruption_form(interruption=interruption, user=administrator, values={"Result": "Proceed"})
    submit_interruption_form(interruption=interruption, user=administrator, values={"Guidance": "Fail", "Notes": "no"})
    interruption.refresh_from_db()
    assert (interruption.result, interruption.note, interruption.is_pending) == ("Fail", "no", False)
    assert not can_take_responsibility(interruption=interruption, user=administrator)


def test_the_deployments_api_takes_use_guided_failure(administrator, project, production, api_client):
    add_step(project, "Broken", "exit 1")
    release = deploy.create_release(actor=administrator, project=project)
    client = api_client(administrator)
    response = client.post(
        f"/api/{project.space.octopus_id}/deployments",
        {"ReleaseId": release.octopus_id, "EnvironmentId": production.octopus_id, "UseGuidedFailure": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["UseGuidedFailure"] is True
    task = ServerTask.objects.get(pk=ServerTask.pk_from_octopus_id(response.json()["TaskId"]))
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Executing" and task.has_pending_interruptions
    assert (
        client.get(f"/api/{project.space.octopus_id}/environments/{production.octopus_id}").json()["UseGuidedFailure"]
        is False
    )
