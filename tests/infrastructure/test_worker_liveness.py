"""Dead workers found in seconds, against real agents: a polling agent's open long poll is its
heartbeat; a listening agent is marked down by the first failed call and re-checked with backoff.
A machine policy change applies at once, and a stale health result never overwrites a newer one."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from infrastructure.models import MachinePolicy, Worker, WorkerPool
from infrastructure.services import health
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.policies import create_machine_policy, update_machine_policy
from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
from infrastructure.transports.polling import requests_key
from portal.redis import redis_client
from portal.services.api_keys import create_api_key
from tests.agent.conftest import live_reef, polling_endpoint  # noqa: F401 - fixtures
from tests.agent.harness import Agent, free_port, tentacle, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(worker: Worker) -> str:
    return Worker.objects.get(pk=worker.pk).health_status


@pytest.fixture
def quick_policy(space, administrator) -> MachinePolicy:
    return create_machine_policy(actor=administrator, space=space, name="Quick", connect_timeout=2, retry_count=0, retry_wait=0,
                                 polling_request_queue_timeout=10, health_check_interval=3600)


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
    worker = register_worker(actor=administrator, space=space, spec=WorkerSpec(
        name="listener", worker_pools=[WorkerPool.objects.get(space=space, is_default=True)], machine_policy=quick_policy,
        endpoint=Endpoint(communication_style="TentaclePassive", uri=f"https://127.0.0.1:{agent.port}/", thumbprint=agent.thumbprint)))
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


def test_a_killed_listening_agent_is_unavailable_at_the_first_failed_call_and_back_within_seconds(listening_agent, beat):
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
        polling_endpoint, space, administrator, quick_policy):  # noqa: F811
    worker = register_worker(actor=administrator, space=space, spec=WorkerSpec(
        name="never-started", worker_pools=[WorkerPool.objects.get(space=space, is_default=True)], machine_policy=quick_policy,
        endpoint=Endpoint(communication_style="TentacleActive", uri="poll://neverstarted000000/", thumbprint="A" * 40)))
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
    newer = health.record_health(worker=worker, status="Unavailable", summary="found down by a later call", log_text="",
                                 capabilities=None, started=slow_check_started + timedelta(seconds=1))
    assert newer.health_status == "Unavailable"
    stale = health.record_health(worker=worker, status="Healthy", summary="Healthy", log_text="", capabilities=None,
                                 started=slow_check_started)
    assert stale.health_status == "Unavailable" and status_of(worker) == "Unavailable"
    assert Worker.objects.get(pk=worker.pk).status_summary == "found down by a later call"
