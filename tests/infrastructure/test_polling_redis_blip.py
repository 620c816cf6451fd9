"""Redis restarts while a request to a polling agent is in flight: the caller keeps the request,
queues it again once Redis is back, and the agent receives it exactly once; the endpoint (and its
pub/sub listener) carry on by themselves. A Redis of our own: the shared one is never restarted."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from infrastructure.models import MachinePolicy, Worker
from infrastructure.services.certificates import current_server_certificate
from infrastructure.transports.polling import PollingTransport, requests_key
from tests.e2e.conftest import ROOT, free_port, server_env
from tests.infrastructure.test_polling_endpoint import StandInAgent, agent_certificate, register_poller
from tests.waiting import wait_until

SUBSCRIPTION = "subscriptionredisblip0"


class OwnRedis:
    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_until(lambda: _pings(redis.Redis.from_url(self.url)), timeout=10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture
def own_redis(settings):
    server = OwnRedis()
    server.start()
    settings.REDIS_URL = server.url
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture
def endpoint_on_own_redis(own_redis, transactional_db):
    current_server_certificate()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=server_env(REDIS_URL=own_redis.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert "listening" in process.stdout.readline()
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    yield port, process
    process.terminate()
    process.wait(timeout=15)


class LoopingAgent:
    """Polls, answers every request, and keeps polling through errors, as the real agent does."""

    def __init__(self, agent: StandInAgent):
        self.agent = agent
        self.received: list[str] = []
        self.paused = threading.Event()
        self.idle = threading.Event()  # paused, and no poll of its own open any more
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        acks: list[str] = []
        while not self.stopped.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.05)
                continue
            self.idle.clear()
            try:
                suffix = f"&ack={','.join(acks)}" if acks else ""
                status, body = self.agent.request("GET", f"/poll/{SUBSCRIPTION}?wait=2{suffix}")
                if status != 200:
                    raise RuntimeError(body)
                acks = []
                for request in body["Requests"]:
                    self.received.append(request["Id"])
                    acks.append(request["Id"])
                    self.agent.answer([{"Id": request["Id"], "Result": {"Echo": request["Params"].get("Word")}}])
            except Exception:  # noqa: BLE001 - Redis is down behind the endpoint: try again
                time.sleep(0.2)


def test_a_request_in_flight_when_redis_restarts_is_delivered_once_after_it_returns(
    endpoint_on_own_redis, own_redis, space, administrator, tmp_path
):
    port, process = endpoint_on_own_redis
    cert, thumb = agent_certificate(tmp_path, "agent")
    worker = register_poller(space, administrator, "poller", SUBSCRIPTION, thumb)
    MachinePolicy.objects.filter(pk=worker.machine_policy_id).update(
        connect_timeout=30, polling_request_queue_timeout=30
    )
    Worker.objects.filter(pk=worker.pk).update(health_status="Healthy")
    worker.refresh_from_db()
    agent = LoopingAgent(StandInAgent(port, cert, SUBSCRIPTION, current_server_certificate().thumbprint))
    assert PollingTransport(worker).call("Echo", {"Word": "before"}) == {"Echo": "before"}

    agent.paused.set()  # the request is queued, not yet taken, when Redis goes away
    wait_until(agent.idle.is_set, timeout=10, what="the agent's last long poll ending")
    outcome: dict = {}

    def call():
        try:
            outcome["result"] = PollingTransport(worker).call("Echo", {"Word": "during"})
        except Exception as error:  # noqa: BLE001 - asserted in the test thread below
            outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    import redis

    queue = redis.Redis.from_url(own_redis.url)
    wait_until(lambda: queue.llen(requests_key(SUBSCRIPTION)), timeout=10, what="the request queued")
    own_redis.kill()
    time.sleep(1.5)  # the outage itself: Redis stays down a second and a half
    own_redis.start()
    agent.paused.clear()
    caller.join(40)
    assert not caller.is_alive() and outcome == {"result": {"Echo": "during"}}, outcome
    assert len(agent.received) == len(set(agent.received)) == 2, "each request delivered exactly once"

    # The endpoint and its notifications carry on: a request is handed out at once again.
    started = time.monotonic()
    assert PollingTransport(worker).call("Echo", {"Word": "after"}) == {"Echo": "after"}
    assert time.monotonic() - started < 5 and process.poll() is None
    agent.stopped.set()
