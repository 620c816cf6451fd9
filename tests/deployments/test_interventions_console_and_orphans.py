"""A manual intervention re-queues the task and selection happens again; the Script Console uses the
same dispatch; a task whose server node died does not stay Executing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import WorkerLease
from deployments.services import deploy
from deployments.services.orchestrator import run_server_task
from deployments.services.tasks import fail_orphaned_tasks
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_after_a_manual_intervention_the_task_is_requeued_and_workers_are_selected_again(
    agents, administrator, project, production, make_pool
):
    pool = make_pool("P")
    agents.start("before", [pool])
    add_step(
        project, "Build", "echo built on #{Octopus.Worker.Name}; set_octopusvariable Artifact app-42", worker_pool=pool
    )
    add_step(project, "Approve", action_type="Octopus.Manual", instructions="Check the build", body="")
    add_step(
        project,
        "Ship",
        "echo shipping #{Octopus.Action[Build].Output.Artifact} on #{Octopus.Worker.Name}",
        worker_pool=pool,
    )
    task = deploy_and_run(administrator, project, production)
    # Waiting for an answer, as Octopus shows it: Executing with a pending interruption, no worker held.
    assert (
        task.state == "Executing" and task.has_pending_interruptions and task.pending_interruption == "Check the build"
    )
    assert not WorkerLease.objects.filter(task=task).exists()
    assert run_server_task(task.pk) is None and ServerTask.objects.get(pk=task.pk).state == "Executing"  # still waiting
    # Meanwhile the pool changes: the only worker goes, another comes.
    agents.running[0].stop()
    old = pool.workers.get()
    old.is_disabled = True
    old.save()
    agents.start("after", [pool])
    deploy.proceed_after_intervention(actor=administrator, task=task, note="looks fine")
    run_server_task(task.pk)
    task.refresh_from_db()
    log = log_text(task)
    assert task.state == "Success", log
    assert "built on before" in log and "shipping app-42 on after" in log
    assert "Administrator chose to proceed. looks fine" in log
    assert log.count("Manual intervention required: Check the build") == 1
    steps = list(
        task.activity_nodes.filter(parent__parent__isnull=True, parent__isnull=False).values_list("name", "status")
    )
    assert steps == [("Step 1: Build", "Success"), ("Step 2: Approve", "Success"), ("Step 3: Ship", "Success")]


def test_aborting_at_a_manual_intervention_fails_the_task(administrator, project, production):
    add_step(project, "Approve", action_type="Octopus.Manual", instructions="Go?", body="")
    add_step(project, "Ship", "echo shipped")
    task = deploy_and_run(administrator, project, production)
    deploy.proceed_after_intervention(actor=administrator, task=task, proceed=False)
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Failed" and "aborted" in task.error_message and "shipped" not in log_text(task)


def test_the_script_console_runs_on_each_chosen_worker(agents, administrator, space, make_pool):
    pool = make_pool("P")
    one, two = agents.start("one", [pool]), agents.start("two", [pool])
    task = deploy.run_adhoc_script(
        actor=administrator,
        space=space,
        syntax="Python",
        script_body="import socket\nprint('hello from console')",
        workers=[one, two],
    )
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success", log_text(task)
    assert log_text(task).count("hello from console") == 2
    assert {n.name for n in task.activity_nodes.filter(parent__parent__isnull=False)} == {"one", "two"}


def test_the_script_console_on_a_pool_picks_one_worker_by_the_rules(agents, administrator, space, make_pool):
    pool = make_pool("P")
    agents.start("only", [pool])
    task = deploy.run_adhoc_script(
        actor=administrator, space=space, syntax="Bash", script_body="echo console", worker_pool=pool
    )
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success" and "only was chosen because round-robin" in log_text(task)


def test_a_task_left_executing_by_a_dead_server_node_is_failed_with_a_message(administrator, project, production):
    add_step(project, "Build", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    ServerTask.objects.filter(pk=task.pk).update(
        state="Executing", started=timezone.now() - timedelta(minutes=5), server_node="node-that-died"
    )
    assert fail_orphaned_tasks() == [task.pk]
    task.refresh_from_db()
    assert task.state == "Failed" and "node-that-died that ran this task stopped" in task.error_message
    assert "stopped without finishing it" in log_text(task)
