"""A real polling agent: it connects out to the polling endpoint, runs what the server queues for it,
many requests at once, and comes back by itself after a restart."""

import threading
import time

import pytest

from infrastructure.models import Worker
from infrastructure.services import health
from infrastructure.services.policies import create_machine_policy
from infrastructure.transports import TransportError
from infrastructure.transports.polling import PollingTransport
from portal.services.api_keys import create_api_key
from tests.agent.harness import Agent, descendant_running, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def polling_agent(live_reef, polling_endpoint, administrator, tmp_path, space):
    key = create_api_key(actor=administrator, user=administrator, purpose="agent tests")[1]
    agent = Agent(tmp_path / "agent").create()
    result = agent.register(live_reef, key, polling=True, polling_address=polling_endpoint, name="poller")
    assert result.returncode == 0, result.stderr
    policy = create_machine_policy(
        actor=administrator,
        space=space,
        name="Quick",
        connect_timeout=10,
        retry_count=0,
        polling_request_queue_timeout=10,
    )
    Worker.objects.filter(name="poller").update(machine_policy=policy)
    agent.start()
    yield agent
    agent.stop()


def test_a_polling_agent_turns_healthy(polling_agent):
    worker = Worker.objects.get(name="poller")
    assert worker.communication_style == "TentacleActive" and worker.subscription_id
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Healthy", checked.health_check_log


def test_many_scripts_run_at_once_over_one_polling_agent(polling_agent):
    transport = PollingTransport(Worker.objects.get(name="poller"))
    results, started = {}, time.monotonic()

    def run(n):
        results[n] = transport.run_script(f"sleep 2; echo done {n}", "Bash", timeout=60)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(20))
    assert all(code == 0 and lines[-1]["Text"] == f"done {n}" for n, (code, lines) in results.items())
    assert time.monotonic() - started < 15, "twenty 2-second scripts ran side by side, not one after another"


def test_a_restarted_polling_agent_reconnects_by_itself(polling_agent):
    worker = Worker.objects.get(name="poller")
    polling_agent.stop()
    polling_agent.start()
    assert health.check_worker_health(worker.pk).health_status == "Healthy"


def test_a_polling_agent_killed_mid_script_fails_the_caller_clearly(polling_agent, administrator, space):
    Worker.objects.filter(name="poller").update(
        machine_policy=create_machine_policy(
            actor=administrator,
            space=space,
            name="Impatient",
            connect_timeout=2,
            retry_count=0,
            polling_request_queue_timeout=5,
        )
    )
    transport = PollingTransport(Worker.objects.get(name="poller"))
    outcome = {}

    def run():
        try:
            transport.run_script("sleep 120", "Bash", timeout=300)
        except TransportError as error:
            outcome["error"] = str(error)

    caller = threading.Thread(target=run)
    caller.start()
    wait_until(
        lambda: descendant_running(polling_agent.process.pid, "sleep 120"), timeout=30, what="the script running"
    )
    polling_agent.kill()
    caller.join(60)
    assert any(
        reason in outcome.get("error", "")
        for reason in ("sent no answer", "did not pick up", "connection was gone", "is not connected")
    ), outcome
