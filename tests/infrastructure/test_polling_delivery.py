"""Delivery to polling agents: what an agent took but never acknowledged is detected, and only a
StartScript (whose script cannot have started) is delivered again, once; an acknowledged request
never is. A caller keeps its request through a Redis restart and gets its answer once."""

from __future__ import annotations

import threading
import time

import pytest

from infrastructure.models import MachinePolicy, Worker
from infrastructure.services.certificates import current_server_certificate
from infrastructure.transports import WorkerUnreachable
from infrastructure.transports.polling import PollingTransport
from infrastructure.transports.polling_endpoint import ACK_SECONDS
from tests.infrastructure.test_polling_endpoint import StandInAgent, agent_certificate, endpoint, register_poller  # noqa: F401

SUBSCRIPTION = "subscriptiondelivery00"


@pytest.fixture
def poller(endpoint, space, administrator, tmp_path):
    port, _ = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    worker = register_poller(space, administrator, "poller", SUBSCRIPTION, thumb)
    MachinePolicy.objects.filter(pk=worker.machine_policy_id).update(
        connect_timeout=30, polling_request_queue_timeout=30
    )
    agent = StandInAgent(port, cert, SUBSCRIPTION, current_server_certificate().thumbprint)
    assert agent.poll(wait=0) == (200, {"Requests": []})  # connected: present
    # Known healthy, so the endpoint's liveness sweep has no reason to send it a health check meanwhile.
    Worker.objects.filter(pk=worker.pk).update(health_status="Healthy")
    worker.refresh_from_db()
    return worker, agent


def call_in_thread(worker, method: str, params: dict) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = PollingTransport(worker).call(method, params)
        except Exception as error:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def poll(agent: StandInAgent, wait: float, ack: list[str] = ()) -> list[dict]:
    suffix = f"&ack={','.join(ack)}" if ack else ""
    status, body = agent.request("GET", f"/poll/{SUBSCRIPTION}?wait={wait}{suffix}")
    assert status == 200, body
    return body["Requests"]


def test_a_start_script_the_agent_never_acknowledged_is_delivered_again_once(poller):
    worker, agent = poller
    caller, outcome = call_in_thread(worker, "StartScript", {"Ticket": "t-1", "ScriptBody": "echo hi"})
    first = poll(agent, wait=5)
    assert [r["Method"] for r in first] == ["StartScript"]
    # The answer was lost on the way: the agent's next polls do not acknowledge it.
    started = time.monotonic()
    again = poll(agent, wait=ACK_SECONDS + 5)
    assert [r["Id"] for r in again] == [first[0]["Id"]], "delivered again after the acknowledgement bound"
    assert time.monotonic() - started >= ACK_SECONDS - 1.5
    assert poll(agent, wait=ACK_SECONDS + 2) == [], "delivered again once, not forever"
    assert agent.answer([{"Id": first[0]["Id"], "Result": {"Ticket": "t-1"}}]) == (200, {"Accepted": 1})
    caller.join(15)
    assert outcome == {"result": {"Ticket": "t-1"}}
    assert agent.answer([{"Id": first[0]["Id"], "Result": {"Ticket": "t-1"}}]) == (200, {"Accepted": 0}), (
        "answered once"
    )


def test_an_acknowledged_request_is_never_delivered_again(poller):
    worker, agent = poller
    caller, outcome = call_in_thread(worker, "StartScript", {"Ticket": "t-2", "ScriptBody": "echo hi"})
    first = poll(agent, wait=5)
    assert poll(agent, wait=ACK_SECONDS + 3, ack=[first[0]["Id"]]) == []
    assert agent.answer([{"Id": first[0]["Id"], "Result": {"Ticket": "t-2"}}]) == (200, {"Accepted": 1})
    caller.join(15)
    assert outcome == {"result": {"Ticket": "t-2"}}


def test_a_status_request_is_not_delivered_again_its_caller_retries(poller):
    worker, agent = poller
    caller, outcome = call_in_thread(worker, "GetStatus", {"Ticket": "t-3"})
    first = poll(agent, wait=5)
    assert [r["Method"] for r in first] == ["GetStatus"]
    assert poll(agent, wait=ACK_SECONDS + 3) == []
    agent.answer([{"Id": first[0]["Id"], "Result": {"State": "Running"}}])
    caller.join(15)
    assert outcome == {"result": {"State": "Running"}}


def test_bad_acknowledgements_are_refused_with_a_reason(poller):
    _, agent = poller
    status, body = agent.request("GET", f"/poll/{SUBSCRIPTION}?wait=0&ack=not%20an%20id")
    assert status == 400 and "ack" in body["ErrorMessage"]


def test_a_request_for_an_agent_that_is_not_connected_is_withdrawn_at_once(endpoint, space, administrator, tmp_path):
    """Nobody polls this subscription: the caller learns in seconds, not after the queue timeout, that
    nothing reached the worker (so a step may move to another worker)."""
    _, thumb = agent_certificate(tmp_path, "never")
    worker = register_poller(space, administrator, "never-polls", "subscriptionnever00000", thumb)
    MachinePolicy.objects.filter(pk=worker.machine_policy_id).update(polling_request_queue_timeout=120)
    worker.refresh_from_db()
    started = time.monotonic()
    with pytest.raises(WorkerUnreachable, match="is not connected"):
        PollingTransport(worker).call("StartScript", {"Ticket": "t-4"})
    assert time.monotonic() - started < 5
    from infrastructure.transports.polling import requests_key
    from portal.redis import redis_client

    assert redis_client().llen(requests_key("subscriptionnever00000")) == 0, "nothing left queued for a late agent"
