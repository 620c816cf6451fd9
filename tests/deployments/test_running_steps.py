"""How steps run: variables, parameters, conditions, parallel steps, MaxParallelism, the mutex, cancel."""

import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from deployments.models import Artifact, DeploymentTarget, Variable
from deployments.services import deploy
from deployments.services.tasks import cancel_server_task
from portal.encryption import encrypt
from servertasks.models import ServerTask
from tests.agent.harness import wait_until
from tests.deployments.conftest import add_step, deploy_and_run, log_text, run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def stamps(task: ServerTask, word: str) -> list[tuple[str, float]]:
    """(who, time) of each 'word who time' line the scripts printed."""
    found = []
    for line in log_text(task).splitlines():
        match = re.fullmatch(rf"{word} (\S+) ([\d.]+)", line)
        if match:
            found.append((match.group(1), float(match.group(2))))
    return found


def test_variables_parameters_and_output_variables_reach_scripts_and_sensitive_values_are_masked(
    administrator, project, production
):
    Variable.objects.create(project=project, name="Greeting", value="hello")
    Variable.objects.create(project=project, name="Password", type="Sensitive", value=encrypt("s3cret-Value"))
    add_step(
        project,
        "First",
        'echo "#{Greeting} $1 $2"; echo "pw=$(get_octopusvariable Password)"; '
        'set_octopusvariable Colour blue; echo "release #{Octopus.Release.Number}"',
        script_parameters="alpha #{Octopus.Environment.Name}",
    )
    add_step(
        project,
        "Second",
        "import octopus\nprint('colour=' + octopus.get_octopusvariable('Octopus.Action[First].Output.Colour'))",
        syntax="Python",
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    assert "hello alpha Production" in log and "release 0.0.1" in log and "colour=blue" in log
    assert "pw=********" in log and "s3cret-Value" not in log


def test_run_conditions_skip_or_run_steps_after_a_failure(administrator, project, production):
    add_step(project, "Breaks", "echo breaking; exit 3")
    add_step(project, "Normal", "echo should-not-run")
    add_step(project, "Cleanup", "echo cleaning up", condition="Always")
    add_step(
        project,
        "On error",
        "echo error was: #{Octopus.Deployment.Error}",
        condition="Variable",
        condition_variable="#{Octopus.Deployment.Error}",
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Failed" and "Step 'Breaks' failed." in task.error_message
    assert "The script exited with code 3." in log and "should-not-run" not in log
    assert "cleaning up" in log and "error was: Step Breaks failed." in log  # bash ate the quotes
    statuses = dict(
        task.activity_nodes.filter(parent__parent__isnull=True, parent__isnull=False).values_list("name", "status")
    )
    assert statuses == {
        "Step 1: Breaks": "Failed",
        "Step 2: Normal": "Skipped",
        "Step 3: Cleanup": "Success",
        "Step 4: On error": "Success",
    }


def test_start_with_previous_runs_steps_in_parallel(administrator, project, production):
    for name in ("a", "b", "c"):
        add_step(
            project,
            name,
            f"echo start {name} $(date +%s.%N); sleep 1; echo end {name} $(date +%s.%N)",
            start_with_previous=name != "a",
        )
    started = time.monotonic()
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Success", log_text(task)
    starts, ends = stamps(task, "start"), stamps(task, "end")
    assert max(t for _, t in starts) < min(t for _, t in ends)  # all started before any ended
    assert time.monotonic() - started < 2.9


def test_max_parallelism_bounds_invocations_on_behalf_of_targets(agents, administrator, project, production, make_pool):
    pool = make_pool("Cloud workers")
    agents.start("cloud-worker", [pool])
    for i in range(5):
        target = DeploymentTarget.objects.create(space=project.space, name=f"region-{i}", roles=["web"])
        target.environments.set([production])
    DeploymentTarget.objects.create(space=project.space, name="other-role", roles=["db"]).environments.set([production])
    add_step(
        project,
        "Per region",
        "echo start #{Octopus.Machine.Name} $(date +%s.%N); sleep 0.6; echo end #{Octopus.Machine.Name} $(date +%s.%N)",
        location="OnBehalfOfTargets",
        worker_pool=pool,
        target_roles=["web"],
        max_parallelism=2,
    )
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Success", log_text(task)
    starts, ends = stamps(task, "start"), stamps(task, "end")
    assert sorted(name for name, _ in starts) == [f"region-{i}" for i in range(5)]
    events = sorted([(t, 1) for _, t in starts] + [(t, -1) for _, t in ends])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2
    assert task.activity_nodes.filter(name__startswith="cloud-worker on behalf of region-").count() == 5


def run_two_tasks_on_one_worker(administrator, project, production, pool):
    add_step(project, "Hold", "echo start x $(date +%s.%N); sleep 1; echo end x $(date +%s.%N)", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    tasks = [deploy.deploy_release(actor=administrator, release=release, environment=production).task for _ in range(2)]
    threads = [run_in_thread(task.pk) for task in tasks]
    for thread in threads:
        thread.join(30)
    for task in tasks:
        task.refresh_from_db()
        assert task.state == "Success", log_text(task)
    (a_start, a_end), (b_start, b_end) = [(stamps(t, "start")[0][1], stamps(t, "end")[0][1]) for t in tasks]
    return tasks, (a_start < b_end and b_start < a_end)


def test_scripts_on_one_worker_overlap_by_default(agents, administrator, project, production, make_pool):
    pool = make_pool("Solo")
    agents.start("solo", [pool])
    _, overlapped = run_two_tasks_on_one_worker(administrator, project, production, pool)
    assert overlapped


def test_octopus_bypass_deployment_mutex_false_makes_scripts_on_a_worker_take_turns(
    agents, administrator, project, production, make_pool
):
    pool = make_pool("Solo")
    agents.start("solo", [pool])
    Variable.objects.create(project=project, name="OctopusBypassDeploymentMutex", value="False")
    tasks, overlapped = run_two_tasks_on_one_worker(administrator, project, production, pool)
    assert not overlapped
    assert any("Waiting for the script isolation mutex" in log_text(t) for t in tasks)


def test_cancel_kills_the_script_on_the_worker_and_ends_canceled(
    agents, administrator, project, production, make_pool, tmp_path
):
    pool = make_pool("P")
    agents.start("w", [pool])
    marker = tmp_path / "still-running"
    add_step(project, "Long", f'sleep 30 & echo "pids $$ $!"; echo started; wait; touch {marker}', worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    thread = run_in_thread(task.pk)
    wait_until(lambda: "started" in log_text(task), timeout=20)
    script_pids = [int(pid) for pid in re.search(r"^pids (\d+) (\d+)$", log_text(task), re.M).groups()]
    assert all(running(pid) for pid in script_pids)
    cancel_server_task(task=task, actor=administrator)
    assert ServerTask.objects.get(pk=task.pk).state == "Cancelling"
    thread.join(20)
    task.refresh_from_db()
    assert task.state == "Canceled"
    assert "The script was cancelled." in log_text(task)
    assert not task.leases.exists()
    # The script's shell and its `sleep 30` are gone in seconds, not when the sleep would have ended.
    wait_until(lambda: not any(running(pid) for pid in script_pids), timeout=10, what="the script's processes ending")
    assert not marker.exists()


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_killed_mid_step_fails_the_step_naming_it(agents, administrator, project, production, make_pool):
    pool = make_pool("P")
    worker = agents.start("doomed", [pool])
    worker.machine_policy.connect_timeout = 3
    worker.machine_policy.save()
    add_step(project, "Long", "echo started; sleep 30", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    thread = run_in_thread(task.pk)
    wait_until(lambda: "started" in log_text(task), timeout=20)
    worker.agent.kill()
    thread.join(30)
    task.refresh_from_db()
    assert task.state == "Failed"
    assert "doomed failed while running the script:" in log_text(task)
    assert task.activity_nodes.get(name="doomed").status == "Failed"


def test_artifacts_are_collected_into_the_task(administrator, project, production):
    add_step(project, "Report", 'echo "all good" > report.txt; new_octopusartifact "$PWD/report.txt" report.txt')
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Success", log_text(task)
    artifact = Artifact.objects.get(task=task)
    assert artifact.name == "report.txt" and bytes(artifact.content) == b"all good\n"


def test_a_task_timeout_ends_it_timed_out(administrator, project, production, settings):
    settings.REEF_TASK_TIMEOUT = 2
    add_step(project, "Slow", "echo begin; sleep 20")
    started = datetime.now()
    task = deploy_and_run(administrator, project, production)
    assert task.state == "TimedOut"
    assert (datetime.now() - started).total_seconds() < 15


def test_a_step_printing_more_lines_than_one_status_page_keeps_every_line(administrator, project, production):
    add_step(project, "Chatty", "seq 1 12345")
    task = deploy_and_run(administrator, project, production)
    numbers = [line for line in log_text(task).splitlines() if line.isdigit()]
    assert numbers == [str(n) for n in range(1, 12346)]


def test_a_worker_in_two_pools_is_one_worker_for_the_mutex(agents, administrator, space, production, make_pool):
    from deployments.models import Project

    first_pool, second_pool = make_pool("First"), make_pool("Second")
    agents.start("shared", [first_pool, second_pool])
    tasks = []
    for name, pool in (("A", first_pool), ("B", second_pool)):
        project = Project.objects.create(space=space, name=name, slug=name.lower())
        Variable.objects.create(project=project, name="OctopusBypassDeploymentMutex", value="False")
        add_step(
            project,
            "Hold",
            f"echo start {name} $(date +%s.%N); sleep 1; echo end {name} $(date +%s.%N)",
            worker_pool=pool,
        )
        release = deploy.create_release(actor=administrator, project=project)
        tasks.append(deploy.deploy_release(actor=administrator, release=release, environment=production).task)
    for thread in [run_in_thread(task.pk) for task in tasks]:
        thread.join(30)
    (a_start, a_end), (b_start, b_end) = [(stamps(t, "start")[0][1], stamps(t, "end")[0][1]) for t in tasks]
    assert a_end <= b_start or b_end <= a_start  # took turns although the pools differ
