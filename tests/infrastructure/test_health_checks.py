"""Health checks through real transports: an OpenSSH server on loopback, an unreachable port, a
polling worker whose agent never fetches its request."""

import os
import shutil
import socket
import tempfile

import pytest

from infrastructure.models import MachinePolicy, Worker, WorkerPool
from infrastructure.services import accounts, health, workers
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports import ssh
from infrastructure.transports.ssh import SshTransport, discover_host_key
from portal.models import Event
from tests.infrastructure.sshd import start_sshd


@pytest.fixture(scope="module", autouse=True)
def remote_home():
    """The agent's folder on the host is this module's own: every sshd here logs in as the same account,
    and the test without SFTP starts from an empty folder, which must not be another test run's."""
    saved, ssh.REMOTE_HOME = ssh.REMOTE_HOME, tempfile.mkdtemp(prefix="reef-ssh-")
    yield ssh.REMOTE_HOME
    shutil.rmtree(ssh.REMOTE_HOME, ignore_errors=True)
    ssh.REMOTE_HOME = saved


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def quick_policy(space, administrator):
    from infrastructure.services.policies import create_machine_policy

    return create_machine_policy(
        actor=administrator,
        space=space,
        name="Quick",
        connect_timeout=15,  # refused or mismatched connects fail at once; a busy machine may take seconds to log in
        retry_count=0,
        retry_wait=0,
        polling_request_queue_timeout=5,
    )


def ssh_worker(space, administrator, sshd, policy, *, fingerprint=None, port=None, script=None) -> Worker:
    if script is not None:
        MachinePolicy.objects.filter(pk=policy.pk).update(bash_health_check_script=script)
        policy.refresh_from_db()
    account = accounts.save_account(
        actor=administrator,
        space=space,
        name=f"key-{port or sshd.port}-{fingerprint}",
        account_type="SshKeyPair",
        username=sshd.username,
        private_key=sshd.client_private_key,
    )
    _, discovered = discover_host_key(sshd.host, sshd.port)
    pool = WorkerPool.objects.get(space=space, is_default=True)
    return workers.register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name=f"ssh-{Worker.objects.count()}",
            worker_pools=[pool],
            machine_policy=policy,
            endpoint=Endpoint(
                communication_style="Ssh",
                host=sshd.host,
                port=port or sshd.port,
                fingerprint=fingerprint or discovered,
                account=account,
            ),
        ),
    )


def test_an_ssh_worker_turns_healthy_and_reports_what_it_has(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy)
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Healthy", checked.health_check_log
    assert checked.capabilities["OperatingSystem"] == "Linux" and "bash" in checked.capabilities["Shells"]
    assert "Result: Healthy." in checked.health_check_log and checked.last_health_check is not None
    assert Event.objects.filter(category="MachineHealthy", document_id=worker.octopus_id).exists()


def test_a_failing_health_script_makes_the_worker_unhealthy(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy, script="echo 'disk full' >&2\nexit 3")
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Unhealthy", checked.health_check_log
    assert "exited with code 3" in checked.status_summary and "disk full" in checked.health_check_log


def test_warnings_from_the_health_script_mean_has_warnings(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy, script='write_warning "Disk 91% full"\necho fine')
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "HasWarnings", checked.health_check_log
    assert "Disk 91% full" in checked.status_summary
    assert checked.is_available()


def test_a_host_key_that_changed_is_refused(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy, fingerprint="SHA256:" + "A" * 43)
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Unavailable"
    assert "not the pinned SHA256:AAAA" in checked.status_summary


def test_an_unreachable_worker_becomes_unavailable_with_the_reason(space, administrator, sshd, quick_policy):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    worker = ssh_worker(space, administrator, sshd, quick_policy, port=closed_port)
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Unavailable" and "Could not connect" in checked.status_summary
    assert checked.unavailable_since is not None and not checked.is_available()


def test_a_polling_request_nobody_fetches_fails_clearly(space, administrator, quick_policy):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    MachinePolicy.objects.filter(pk=quick_policy.pk).update(connect_timeout=1)
    worker = workers.register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="lonely-poller",
            worker_pools=[pool],
            machine_policy=quick_policy,
            endpoint=Endpoint(
                communication_style="TentacleActive", uri="poll://nobodyhome00000000000/", thumbprint="C" * 40
            ),
        ),
    )
    checked = health.check_worker_health(worker.pk)
    # Its agent is not connected (no presence): said at once, and no request is left queued for it.
    assert checked.health_status == "Unavailable" and "it is not polling the server" in checked.status_summary
    from infrastructure.transports.polling import requests_key
    from portal.redis import redis_client

    assert redis_client().llen(requests_key("nobodyhome00000000000")) == 0


def test_a_due_worker_is_claimed_by_one_sweep_only(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy)
    assert health.claim_due_workers() == [worker.pk]
    assert health.claim_due_workers() == []
    worker.refresh_from_db()
    assert worker.next_health_check is not None


def test_disabled_workers_are_not_checked(space, administrator, sshd, quick_policy):
    worker = ssh_worker(space, administrator, sshd, quick_policy)
    workers.set_worker_disabled(actor=administrator, worker=worker, disabled=True)
    assert health.claim_due_workers() == []


def test_a_policy_deletes_workers_unavailable_for_longer_than_its_span(space, administrator, quick_policy):
    from datetime import timedelta

    from django.utils import timezone

    from infrastructure.services.policies import update_machine_policy

    update_machine_policy(
        actor=administrator, policy=quick_policy, delete_behavior="DeleteUnavailableMachines", delete_after=3600
    )
    pool = WorkerPool.objects.get(space=space, is_default=True)

    def make(name):
        return workers.register_worker(
            actor=administrator,
            space=space,
            spec=WorkerSpec(
                name=name,
                worker_pools=[pool],
                machine_policy=quick_policy,
                endpoint=Endpoint(
                    communication_style="TentaclePassive", uri=f"https://{name}:10933/", thumbprint="A" * 40
                ),
            ),
        )

    gone, recent = make("long-gone"), make("just-blipped")
    Worker.objects.filter(pk=gone.pk).update(
        health_status="Unavailable", unavailable_since=timezone.now() - timedelta(hours=2)
    )
    Worker.objects.filter(pk=recent.pk).update(
        health_status="Unavailable", unavailable_since=timezone.now() - timedelta(minutes=5)
    )
    assert health.delete_long_unavailable_workers() == ["long-gone"]
    assert list(Worker.objects.values_list("name", flat=True)) == ["just-blipped"]
    assert Event.objects.filter(category="Deleted", message__contains="long-gone").exists()


def test_scripts_run_over_ssh_with_the_agents_runner_uploaded_once(
    space, administrator, sshd, quick_policy, remote_home
):

    worker = ssh_worker(space, administrator, sshd, quick_policy)
    code, lines = SshTransport(worker).run_script(
        "echo over ssh; echo oops >&2; set_octopusvariable Answer 42; exit 3", "Bash", 30
    )
    assert code == 3
    assert sorted((line["Stream"], line["Text"]) for line in lines) == [("stderr", "oops"), ("stdout", "over ssh")]
    uploaded = [name for name in os.listdir(remote_home) if name.endswith(".pyz")]
    before = os.stat(os.path.join(remote_home, uploaded[0])).st_mtime
    code, lines = SshTransport(worker).run_script("import sys; print(sys.version_info[0])", "Python", 30)
    assert (code, [line["Text"] for line in lines]) == (0, ["3"])
    assert os.stat(os.path.join(remote_home, uploaded[0])).st_mtime == before, "not uploaded twice"


def test_a_host_without_sftp_still_gets_the_agent(space, administrator, quick_policy, tmp_path, remote_home):
    server = start_sshd(tmp_path / "nosftp", sftp=False)
    try:
        shutil.rmtree(remote_home, ignore_errors=True)
        worker = ssh_worker(space, administrator, server, quick_policy)
        code, lines = SshTransport(worker).run_script("echo copied through cat", "Bash", 30)
        assert (code, [line["Text"] for line in lines]) == (0, ["copied through cat"])
    finally:
        server.stop()
