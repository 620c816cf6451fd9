"""An SSH worker, as a user meets it: a deployment and a Script Console script run on it through the
orchestrator, the sshd restarts mid-deployment without losing a line, and a host without Python runs
the same script in Bash-only mode with the same lines, exit code and output variables."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from deployments.models import Environment, Project
from deployments.services import deploy
from deployments.services.orchestrator import run_server_task
from infrastructure.models import Worker
from infrastructure.services import accounts, pools, workers
from infrastructure.services.policies import create_machine_policy
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports import ssh
from infrastructure.transports.ssh import SshTransport, discover_host_key
from servertasks.models import ServerTask
from tests.agent.harness import wait_until
from tests.deployments.conftest import add_step, log_text, run_in_thread
from tests.infrastructure.sshd import start_sshd
from tests.transports.conftest import restart_sshd
from tests.transports.scripts import execute

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sshd-e2e")
    server = start_sshd(folder)
    server.folder = folder  # type: ignore[attr-defined]
    saved = (ssh.REMOTE_HOME, ssh.RELAY_IDLE_SECONDS)
    ssh.REMOTE_HOME, ssh.RELAY_IDLE_SECONDS = tempfile.mkdtemp(prefix="reef-ssh-"), 20
    yield server
    ssh.REMOTE_HOME, ssh.RELAY_IDLE_SECONDS = saved
    server.stop()


@pytest.fixture
def ssh_pool(space, administrator, sshd):
    pool = pools.create_worker_pool(actor=administrator, space=space, name="SSH workers")
    policy = create_machine_policy(
        actor=administrator, space=space, name="Patient", connect_timeout=5, retry_count=5, retry_wait=1
    )
    account = accounts.save_account(
        actor=administrator,
        space=space,
        name="deploy key",
        account_type="SshKeyPair",
        username=sshd.username,
        private_key=sshd.client_private_key,
    )
    _, fingerprint = discover_host_key(sshd.host, sshd.port)
    worker = workers.register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="ns-ssh",
            worker_pools=[pool],
            machine_policy=policy,
            endpoint=Endpoint(
                communication_style="Ssh", host=sshd.host, port=sshd.port, fingerprint=fingerprint, account=account
            ),
        ),
    )
    Worker.objects.filter(pk=worker.pk).update(health_status=Worker.HealthStatus.HEALTHY)
    return pool


@pytest.fixture
def project(space):
    return Project.objects.create(space=space, name="Hello workers", slug="hello-workers")


@pytest.fixture
def production(space):
    return Environment.objects.create(space=space, name="Production", sort_order=1)


def no_work_folders_left() -> bool:
    return not list(Path(ssh.REMOTE_HOME).glob("*/Work/*"))


def deploy_in_thread(administrator, project, environment):
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=environment).task
    return task, run_in_thread(task.pk)


def test_a_deployment_runs_its_steps_on_an_ssh_worker(administrator, project, production, ssh_pool):
    add_step(
        project,
        "Greet",
        'echo "hello from $(hostname) as $(whoami)"; set_octopusvariable Colour teal',
        worker_pool=ssh_pool,
    )
    add_step(
        project, "Use it", 'echo "colour #{Octopus.Action[Greet].Output.Colour}"; echo oops >&2', worker_pool=ssh_pool
    )
    task, thread = deploy_in_thread(administrator, project, production)
    thread.join(120)
    task.refresh_from_db()
    log = log_text(task)
    assert task.state == ServerTask.State.SUCCESS, log
    assert "no script session" not in log and "hello from" in log and "colour teal" in log and "oops" in log
    assert "ns-ssh was chosen" in log
    assert not task.leases.exists() and no_work_folders_left()


def test_the_script_console_runs_on_an_ssh_worker(administrator, space, ssh_pool):
    task = deploy.run_adhoc_script(
        actor=administrator, space=space, syntax="Bash", script_body="echo console over ssh", worker_pool=ssh_pool
    )
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == ServerTask.State.SUCCESS, log_text(task)
    assert log_text(task).count("console over ssh") == 1


def test_an_sshd_restarted_during_a_step_loses_no_line(administrator, project, production, ssh_pool, sshd):
    add_step(project, "First", "echo first step", worker_pool=ssh_pool)
    add_step(project, "Long", 'for i in $(seq 1 30); do echo "tick $i"; sleep 0.1; done', worker_pool=ssh_pool)
    task, thread = deploy_in_thread(administrator, project, production)
    wait_until(lambda: "tick 3" in log_text(task), timeout=60)
    restart_sshd(sshd, sshd.folder)
    thread.join(120)
    task.refresh_from_db()
    log = log_text(task)
    assert task.state == ServerTask.State.SUCCESS, log
    assert [line for line in log.splitlines() if line.startswith("tick ")] == [f"tick {i}" for i in range(1, 31)]
    assert not task.leases.exists()
    assert no_work_folders_left(), "a script's work folder was left on the worker"
    # And the deployment after it, on the restarted sshd, as a user would try next.
    task, thread = deploy_in_thread(administrator, project, production)
    thread.join(120)
    task.refresh_from_db()
    assert task.state == ServerTask.State.SUCCESS, log_text(task)


def test_a_host_without_python_runs_bash_only_with_the_same_results(space, administrator, ssh_pool, monkeypatch):
    worker = Worker.objects.select_related("machine_policy", "account").get(name="ns-ssh")
    script = (
        'echo "one"; echo "two" >&2; set_octopusvariable Size 42; '
        'printf "x" > a.txt; new_octopusartifact a.txt; write_warning "careful"; exit 4'
    )
    with_agent = execute(SshTransport(worker), script)
    monkeypatch.setattr(ssh, "PYTHON_PROBE", "true")  # finds no Python
    monkeypatch.setattr(ssh, "_hosts", {})
    bash_only = SshTransport(worker)
    assert bash_only.bash_only()
    without = execute(bash_only, script)
    assert without.exit_code == with_agent.exit_code == 4
    assert sorted((line["Stream"], line["Category"], line["Text"]) for line in without.lines) == sorted(
        (line["Stream"], line["Category"], line["Text"]) for line in with_agent.lines
    )
    assert (
        without.status["OutputVariables"]
        == with_agent.status["OutputVariables"]
        == [{"Name": "Size", "Value": "42", "IsSensitive": False}]
    )
    assert without.artifacts == with_agent.artifacts and without.artifacts[0]["Length"] == 1
    assert without.status["FailureMessage"] == with_agent.status["FailureMessage"]
