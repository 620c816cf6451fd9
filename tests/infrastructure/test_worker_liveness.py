"""Dead workers found in seconds, against real agents: a polling agent's open long poll is its
heartbeat; a listening agent is marked down by the first failed call and re-checked with backoff, and
between calls by the TCP liveness probe (as is an SSH worker whose sshd is gone).
A machine policy change applies at once, and a stale health result never overwrites a newer one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from infrastructure.models import MachinePolicy, Worker, WorkerPool
from infrastructure.services import accounts, health, liveness
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.policies import create_machine_policy, update_machine_policy
from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
from infrastructure.transports.polling import requests_key
from infrastructure.transports.ssh import discover_host_key
from portal.models import Event
from portal.redis import redis_client
from portal.services.api_keys import create_api_key
from tests.agent.conftest import live_reef, polling_endpoint  # noqa: F401 - fixtures
from tests.agent.harness import Agent, free_port, tentacle, wait_until
from tests.infrastructure.sshd import SSHD, start_sshd

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(worker: Worker) -> str:
    return Worker.objects.get(pk=worker.pk).health_status


@pytest.fixture
def quick_policy(space, administrator) -> MachinePolicy:
    return create_machine_policy(
        actor=administrator,
        space=space,
        name="Quick",
        connect_timeout=2,
        retry_count=0,
        retry_wait=0,
        polling_request_queue_timeout=10,
        health_check_interval=3600,
    )


@pytest.fixture
def beat():
    """What Celery beat does every few seconds: run the health checks that are due (here every second)."""
    stop = threading.Event()

    def run():
        try:
            while not stop.wait(1):
                health.run_due_health_checks()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


@pytest.fixture
def probe():
    """What Celery beat does every 5 s for listening and SSH workers: one round of the TCP probe.
    Yields the rounds' answers, so a test can wait for rounds to have happened."""
    stop, rounds, errors = threading.Event(), [], []

    def run():
        try:
            while True:
                try:
                    rounds.append(liveness.probe_worker_endpoints())
                except Exception as error:  # noqa: BLE001 - asserted in the test thread
                    errors.append(error)
                if stop.wait(5):
                    break
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield rounds
    stop.set()
    thread.join(30)
    assert not errors, errors


@pytest.fixture
def polling_agent(live_reef, polling_endpoint, administrator, tmp_path, quick_policy):  # noqa: F811
    key = create_api_key(actor=administrator, user=administrator, purpose="liveness tests")[1]
    agent = Agent(tmp_path / "agent").create()
    result = agent.register(live_reef, key, polling=True, polling_address=polling_endpoint, name="poller")
    assert result.returncode == 0, result.stderr
    Worker.objects.filter(name="poller").update(machine_policy=quick_policy)
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def listening_agent(space, administrator, tmp_path, quick_policy):
    agent = Agent(tmp_path / "listener").create(listening_port=free_port())
    trusted = tmp_path / "server.pem"
    trusted.write_text(current_server_certificate().certificate_pem)
    tentacle(agent.home, "configure", "--trust-pem", str(trusted))
    agent.start()
    worker = register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="listener",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            machine_policy=quick_policy,
            endpoint=Endpoint(
                communication_style="TentaclePassive",
                uri=f"https://127.0.0.1:{agent.port}/",
                thumbprint=agent.thumbprint,
            ),
        ),
    )
    assert health.check_worker_health(worker.pk).health_status == "Healthy"
    agent.worker = worker
    yield agent
    agent.stop()


def test_a_killed_polling_agent_is_unavailable_within_ten_seconds_and_back_within_seconds(polling_agent):
    worker = Worker.objects.get(name="poller")
    wait_until(lambda: status_of(worker) == "Healthy", timeout=15)  # the endpoint checks an agent that arrives
    polling_agent.kill()
    killed = time.monotonic()
    wait_until(lambda: status_of(worker) == "Unavailable", timeout=10)
    gone_after = time.monotonic() - killed
    assert "connection has been gone for 5s" in Worker.objects.get(pk=worker.pk).status_summary
    polling_agent.start()
    restarted = time.monotonic()
    wait_until(lambda: status_of(worker) == "Healthy", timeout=10)
    back_after = time.monotonic() - restarted
    assert gone_after <= 10 and back_after <= 10, (gone_after, back_after)


def test_a_killed_listening_agent_is_unavailable_at_the_first_failed_call_and_back_within_seconds(
    listening_agent, beat
):
    worker = listening_agent.worker
    listening_agent.kill()
    checked = health.check_worker_health(worker.pk)  # a call fails: a step's or a check's alike
    assert checked.health_status == "Unavailable" and "127.0.0.1" in checked.status_summary
    assert checked.next_health_check <= timezone.now() + timedelta(seconds=6), "re-checked in seconds, not in an hour"
    listening_agent.start()
    restarted = time.monotonic()
    wait_until(lambda: status_of(worker) == "Healthy", timeout=20)
    assert time.monotonic() - restarted <= 20
    assert Worker.objects.get(pk=worker.pk).recheck_attempt == 0


def test_quick_rechecks_back_off_while_the_worker_stays_down(listening_agent):
    worker = listening_agent.worker
    listening_agent.kill()
    delays = []
    for _ in range(3):
        before = timezone.now()
        checked = health.check_worker_health(worker.pk)
        delays.append(round((checked.next_health_check - before).total_seconds()))
    assert delays[0] <= 6 and 14 <= delays[1] <= 16 and 59 <= delays[2] <= 61, delays


def test_a_polling_worker_whose_agent_never_started_is_unavailable_without_queueing_a_request(
    polling_endpoint, space, administrator, quick_policy
):  # noqa: F811
    worker = register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="never-started",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            machine_policy=quick_policy,
            endpoint=Endpoint(
                communication_style="TentacleActive", uri="poll://neverstarted000000/", thumbprint="A" * 40
            ),
        ),
    )
    started = time.monotonic()
    health.run_due_health_checks()
    assert time.monotonic() - started < 5, "no queue timeout waited out"
    assert status_of(worker) == "Unavailable"
    assert redis_client().llen(requests_key("neverstarted000000")) == 0, "no request was queued"


def test_a_machine_policy_change_applies_at_once(listening_agent, administrator):
    worker = listening_agent.worker
    policy = worker.machine_policy
    assert Worker.objects.get(pk=worker.pk).next_health_check > timezone.now() + timedelta(minutes=50)
    update_machine_policy(actor=administrator, policy=policy, bash_health_check_script="echo 'disk full'; exit 3")
    assert Worker.objects.get(pk=worker.pk).next_health_check <= timezone.now(), "a changed check is due now"
    health.run_due_health_checks()
    checked = Worker.objects.get(pk=worker.pk)
    assert checked.health_status == "Unhealthy" and "exited with code 3" in checked.status_summary
    update_machine_policy(actor=administrator, policy=policy, bash_health_check_script="", health_check_interval=120)
    due = Worker.objects.get(pk=worker.pk).next_health_check
    assert due <= timezone.now() + timedelta(seconds=5), "the script changed: checked now"
    health.run_due_health_checks()
    update_machine_policy(actor=administrator, policy=policy, health_check_interval=60)
    checked = Worker.objects.get(pk=worker.pk)
    assert checked.next_health_check <= checked.last_health_check + timedelta(seconds=61), "the interval is recomputed"


def test_a_result_from_a_check_that_started_earlier_never_overwrites_a_newer_one(listening_agent):
    worker = listening_agent.worker
    slow_check_started = timezone.now()
    newer = health.record_health(
        worker=worker,
        status="Unavailable",
        summary="found down by a later call",
        log_text="",
        capabilities=None,
        started=slow_check_started + timedelta(seconds=1),
    )
    assert newer.health_status == "Unavailable"
    stale = health.record_health(
        worker=worker, status="Healthy", summary="Healthy", log_text="", capabilities=None, started=slow_check_started
    )
    assert stale.health_status == "Unavailable" and status_of(worker) == "Unavailable"
    assert Worker.objects.get(pk=worker.pk).status_summary == "found down by a later call"


def test_a_killed_listening_agent_is_unavailable_within_ten_seconds_with_no_call_in_flight(
    listening_agent, beat, probe
):
    worker = listening_agent.worker
    listening_agent.kill()
    killed = time.monotonic()
    wait_until(lambda: status_of(worker) == "Unavailable", timeout=10)
    assert time.monotonic() - killed <= 10
    summary = Worker.objects.get(pk=worker.pk).status_summary
    assert f"https://127.0.0.1:{listening_agent.port}/" in summary and "liveness probe" in summary, summary
    # Down a while: its next backoff re-check is an hour away. The port answering again is what brings it back.
    Worker.objects.filter(pk=worker.pk).update(next_health_check=timezone.now() + timedelta(hours=1), recheck_attempt=5)
    listening_agent.start()
    restarted = time.monotonic()
    wait_until(lambda: status_of(worker) == "Healthy", timeout=15)
    assert time.monotonic() - restarted <= 15
    assert Worker.objects.get(pk=worker.pk).recheck_attempt == 0


def test_a_live_listening_agent_is_never_flapped_and_costs_no_database_write(listening_agent, beat, probe):
    worker = Worker.objects.get(pk=listening_agent.worker.pk)
    rounds_before = len(probe)
    wait_until(lambda: len(probe) >= rounds_before + 3, timeout=30)
    assert all(r["down"] == 0 for r in probe), probe
    after = Worker.objects.get(pk=worker.pk)
    assert after.health_status == "Healthy"
    assert after.last_health_check == worker.last_health_check, "no write per probe"
    assert after.health_check_started == worker.health_check_started
    assert not Event.objects.filter(category=Event.Category.MACHINE_UNAVAILABLE, message__contains=worker.name).exists()


def _kill_sshd(server) -> None:
    """The host's sshd gone, with the sessions it serves (its children): a stopped or crashed machine."""
    children = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == server.process.pid:
                        children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    server.process.kill()
    server.process.wait(10)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_an_ssh_worker_whose_sshd_is_killed_is_unavailable_within_ten_seconds_and_back_within_seconds(
    space, administrator, quick_policy, tmp_path, beat, probe
):
    folder = tmp_path / "sshd"
    server = start_sshd(folder)
    try:
        account = accounts.save_account(
            actor=administrator,
            space=space,
            name="ssh key",
            account_type="SshKeyPair",
            username=server.username,
            private_key=server.client_private_key,
        )
        worker = register_worker(
            actor=administrator,
            space=space,
            spec=WorkerSpec(
                name="ssh-host",
                worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
                machine_policy=quick_policy,
                endpoint=Endpoint(
                    communication_style="Ssh",
                    host=server.host,
                    port=server.port,
                    fingerprint=discover_host_key(server.host, server.port)[1],
                    account=account,
                ),
            ),
        )
        assert health.check_worker_health(worker.pk).health_status == "Healthy"
        _kill_sshd(server)
        killed = time.monotonic()
        wait_until(lambda: status_of(worker) == "Unavailable", timeout=10)
        assert time.monotonic() - killed <= 10
        assert f"ssh://127.0.0.1:{server.port}/" in Worker.objects.get(pk=worker.pk).status_summary
        later = timezone.now() + timedelta(hours=1)
        Worker.objects.filter(pk=worker.pk).update(next_health_check=later, recheck_attempt=5)
        server.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        restarted = time.monotonic()
        wait_until(lambda: status_of(worker) == "Healthy", timeout=15)
        assert time.monotonic() - restarted <= 15
        rounds = len(probe)
        wait_until(lambda: len(probe) >= rounds + 2, timeout=20)
        assert status_of(worker) == "Healthy", "a live sshd is never flapped"
    finally:
        server.stop()


def test_a_probe_round_over_a_thousand_silent_hosts_ends_by_its_deadline_and_a_timeout_alone_marks_nobody(
    space, quick_policy
):
    # A port whose backlog is full drops further SYNs, like a host that vanished from the network.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    port = silent.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    try:
        Worker.objects.bulk_create(
            [
                Worker(
                    space=space,
                    name=f"silent-{n}",
                    communication_style="TentaclePassive",
                    uri=f"https://127.0.0.1:{port}/",
                    thumbprint="A" * 40,
                    machine_policy=quick_policy,
                    health_status="Healthy",
                )
                for n in range(1000)
            ]
        )
        began = time.monotonic()
        first = liveness.probe_worker_endpoints()
        held = time.monotonic() - began
        print(f"probe round over 1,000 silent hosts: {held:.2f} s, {first}")
        assert held <= liveness.PROBE_DEADLINE + 3, held
        assert first["probed"] >= 200 and first["down"] == 0, first
        assert not Worker.objects.exclude(health_status="Healthy").exists(), "one timeout proves nothing"
        Worker.objects.exclude(name="silent-0").delete()
        rounds = 1
        while status_of(Worker.objects.get(name="silent-0")) == "Healthy" and rounds < 4:
            liveness.probe_worker_endpoints()
            rounds += 1
        down = Worker.objects.get(name="silent-0")
        assert down.health_status == "Unavailable" and rounds >= 2, (down.health_status, rounds)
        assert "no answer to a TCP connection" in down.status_summary
    finally:
        for filler in fillers:
            filler.close()
        silent.close()


@pytest.fixture
def wedged_port():
    """A port that accepts and drops every connection before TLS (an agent wedged at start): each
    connection attempt is counted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    attempts = []

    def run():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            attempts.append(time.monotonic())
            client.close()

    threading.Thread(target=run, daemon=True).start()
    yield listener.getsockname()[1], attempts
    listener.close()


def test_a_dead_worker_costs_one_policy_worth_of_connection_retries_not_one_per_recheck(
    space, administrator, wedged_port
):
    port, attempts = wedged_port
    policy = create_machine_policy(
        actor=administrator,
        space=space,
        name="Three tries",
        connect_timeout=2,
        retry_count=2,
        retry_wait=0,
        polling_request_queue_timeout=10,
        health_check_interval=3600,
    )
    worker = register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="wedged",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            machine_policy=policy,
            endpoint=Endpoint(
                communication_style="TentaclePassive", uri=f"https://127.0.0.1:{port}/", thumbprint="A" * 40
            ),
        ),
    )
    Worker.objects.filter(pk=worker.pk).update(health_status="Healthy", next_health_check=timezone.now())
    health.run_due_health_checks()  # found down by the sweep: the policy's 1 + 2 attempts, once
    wait_until(lambda: status_of(worker) == "Unavailable", timeout=15)
    assert len(attempts) == 3, attempts
    assert "attempt 2 of 3 failed" in Worker.objects.get(pk=worker.pk).health_check_log
    for recheck in (1, 2):  # the quick re-checks: one attempt each
        Worker.objects.filter(pk=worker.pk).update(next_health_check=timezone.now())
        health.run_due_health_checks()
        expected = 1 + recheck
        wait_until(lambda n=expected: Worker.objects.get(pk=worker.pk).recheck_attempt == n, timeout=15)
        assert len(attempts) == 3 + recheck, attempts
    assert status_of(worker) == "Unavailable"
