"""The polling endpoint, as a real process: mutual TLS pinned both ways, requests handed out to the
right subscription only, answers routed back to the waiting caller."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infrastructure.models import WorkerPool
from infrastructure.services import workers
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.policies import create_machine_policy
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports import TransportError
from infrastructure.transports.polling import PollingTransport
from tests.e2e.conftest import ROOT, free_port, server_env
from tests.waiting import wait_until


def agent_certificate(tmp_path, name: str) -> tuple[str, str]:
    """(path of cert+key PEM, thumbprint) for a stand-in agent."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"{name}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path), hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


class StandInAgent:
    def __init__(self, port: int, cert_path: str, subscription: str, server_thumbprint: str):
        self.port, self.subscription, self.server_thumbprint = port, subscription, server_thumbprint
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.check_hostname, self.context.verify_mode = False, ssl.CERT_NONE
        self.context.load_cert_chain(cert_path)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30)
        connection.connect()
        seen = hashlib.sha1(connection.sock.getpeercert(binary_form=True)).hexdigest().upper()
        assert seen == self.server_thumbprint, "the agent pins the server's certificate"
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def poll(self, wait: float = 0, subscription: str | None = None) -> tuple[int, dict]:
        return self.request("GET", f"/poll/{subscription or self.subscription}?wait={wait}")

    def answer(self, responses: list[dict], subscription: str | None = None) -> tuple[int, dict]:
        return self.request(
            "POST",
            f"/poll/{subscription or self.subscription}/responses",
            json.dumps({"Responses": responses}).encode(),
        )


@pytest.fixture
def endpoint(transactional_db):
    current_server_certificate()  # the process serves the same certificate the test pins
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    assert "listening" in line, line + process.stdout.read() if process.poll() is not None else line
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # never let its pipe fill
    yield port, process
    process.terminate()
    process.wait(timeout=10)


def register_poller(space, administrator, name: str, subscription: str, thumbprint: str):
    policy = create_machine_policy(
        actor=administrator,
        space=space,
        name=f"policy {name}",
        connect_timeout=1,
        polling_request_queue_timeout=5,
        retry_count=0,
    )
    return workers.register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name=name,
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            machine_policy=policy,
            endpoint=Endpoint(
                communication_style="TentacleActive", uri=f"poll://{subscription}/", thumbprint=thumbprint
            ),
        ),
    )


def test_a_request_reaches_the_polling_agent_and_its_answer_comes_back(endpoint, space, administrator, tmp_path):
    port, _ = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    worker = register_poller(space, administrator, "poller", "subscriptionaaaaaaaaa", thumb)
    agent = StandInAgent(port, cert, "subscriptionaaaaaaaaa", current_server_certificate().thumbprint)
    assert agent.poll(wait=0) == (200, {"Requests": []})

    result = {}
    caller = threading.Thread(target=lambda: result.update(PollingTransport(worker).call("Health")))
    started = time.monotonic()
    caller.start()
    status, body = agent.poll(wait=10)
    handed_out = time.monotonic() - started
    assert status == 200 and [r["Method"] for r in body["Requests"]] == ["Health"]
    assert handed_out < 3, "a waiting agent is woken at once, not at the end of its wait"
    request = body["Requests"][0]
    assert agent.answer([{"Id": request["Id"], "Result": {"AgentVersion": "1.0", "OperatingSystem": "Linux"}}]) == (
        200,
        {"Accepted": 1},
    )
    caller.join(10)
    assert result == {"AgentVersion": "1.0", "OperatingSystem": "Linux"}


def test_an_unknown_certificate_is_refused(endpoint, space, administrator, tmp_path):
    port, process = endpoint
    _, thumb = agent_certificate(tmp_path, "registered")
    register_poller(space, administrator, "poller", "subscriptionbbbbbbbbb", thumb)
    stranger_cert, stranger_thumb = agent_certificate(tmp_path, "stranger")
    stranger = StandInAgent(port, stranger_cert, "subscriptionbbbbbbbbb", current_server_certificate().thumbprint)
    status, body = stranger.poll()
    assert status == 403 and stranger_thumb in body["ErrorMessage"]


def test_an_agent_cannot_read_or_answer_another_subscription(endpoint, space, administrator, tmp_path):
    port, _ = endpoint
    cert_a, thumb_a = agent_certificate(tmp_path, "a")
    _, thumb_b = agent_certificate(tmp_path, "b")
    register_poller(space, administrator, "poller-a", "subscriptioncccccccccc", thumb_a)
    worker_b = register_poller(space, administrator, "poller-b", "subscriptiondddddddddd", thumb_b)
    agent_a = StandInAgent(port, cert_a, "subscriptioncccccccccc", current_server_certificate().thumbprint)
    assert agent_a.poll(subscription="subscriptiondddddddddd")[0] == 403

    outcome: dict = {}

    def call_b():
        try:
            outcome["result"] = PollingTransport(worker_b).call("Health")
        except Exception as error:  # noqa: BLE001 - asserted in the test thread below
            outcome["error"] = error

    caller = threading.Thread(target=call_b)
    caller.start()
    from infrastructure.transports.polling import requests_key
    from portal.redis import redis_client

    raw = wait_until(
        lambda: redis_client().lindex(requests_key("subscriptiondddddddddd"), 0),
        timeout=10,
        what="poller-b's request queued",
    )
    queued = json.loads(raw)
    assert agent_a.answer([{"Id": queued["Id"], "Result": {"Forged": True}}]) == (200, {"Accepted": 0})
    caller.join(30)
    assert not caller.is_alive(), "the call to poller-b gave up by its policy's queue timeout"
    assert "result" not in outcome, f"agent a's forged answer reached poller-b's caller: {outcome['result']}"
    assert isinstance(outcome.get("error"), TransportError), outcome


def test_malformed_answers_get_a_clear_error_and_the_endpoint_keeps_serving(endpoint, space, administrator, tmp_path):
    port, process = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    register_poller(space, administrator, "poller", "subscriptioneeeeeeeeee", thumb)
    agent = StandInAgent(port, cert, "subscriptioneeeeeeeeee", current_server_certificate().thumbprint)
    status, body = agent.request("POST", "/poll/subscriptioneeeeeeeeee/responses", b"{nope")
    assert status == 400 and "Responses" in body["ErrorMessage"]
    assert agent.request("GET", "/poll/subscriptioneeeeeeeeee?wait=soon")[0] == 400
    assert agent.poll()[0] == 200 and process.poll() is None


def stale_poll(agent: StandInAgent, wait: float = 30) -> http.client.HTTPSConnection:
    """A long poll whose answer is never read, as a connection left behind by an agent that died or restarted."""
    from infrastructure.transports.polling import connection_key
    from portal.redis import redis_client

    key = connection_key(agent.subscription)
    polls_before = int(redis_client().get(key) or 0)
    connection = http.client.HTTPSConnection("127.0.0.1", agent.port, context=agent.context, timeout=30)
    connection.request("GET", f"/poll/{agent.subscription}?wait={wait}")
    # The endpoint numbers each poll of a subscription as it parks on it.
    wait_until(
        lambda: int(redis_client().get(key) or 0) > polls_before, timeout=10, what="the endpoint parked on the poll"
    )
    return connection


def health_reaches_the_reconnected_agent(agent: StandInAgent, worker) -> None:
    result = {}
    caller = threading.Thread(target=lambda: result.update(PollingTransport(worker).call("Health")))
    caller.start()
    time.sleep(1)  # not a wait for a condition: the time a stale connection took to steal the request, as it used to
    status, body = agent.poll(wait=3)
    assert status == 200 and [r["Method"] for r in body["Requests"]] == ["Health"], (
        "the request went to the stale connection"
    )
    assert agent.answer([{"Id": body["Requests"][0]["Id"], "Result": {"AgentVersion": "2.0"}}]) == (
        200,
        {"Accepted": 1},
    )
    caller.join(10)
    assert result == {"AgentVersion": "2.0"}


@pytest.mark.parametrize("ending", ["closed", "reset"])
def test_a_dead_agents_connection_takes_no_requests(endpoint, space, administrator, tmp_path, ending):
    """The agent died and a request is queued before it polls again. Closed: only a FIN came, so a
    write to that connection would still succeed. Reset: unread data made its kernel send a RST."""
    port, _ = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    worker = register_poller(space, administrator, "poller", "subscriptionffffffffff", thumb)
    agent = StandInAgent(port, cert, "subscriptionffffffffff", current_server_certificate().thumbprint)
    stale = stale_poll(agent)
    if ending == "closed":
        stale.sock.shutdown(socket.SHUT_WR)
    else:
        stale.close()
    time.sleep(0.2)  # the FIN or RST on its way: the bug needed a request queued after it, before a new poll
    health_reaches_the_reconnected_agent(agent, worker)
    stale.close()


def test_a_newer_connection_supersedes_a_half_dead_one(endpoint, space, administrator, tmp_path):
    """The old connection stays open but nobody reads it (a lost network path): once the agent has
    polled again, requests go to the new connection only."""
    port, _ = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    worker = register_poller(space, administrator, "poller", "subscriptiongggggggggg", thumb)
    agent = StandInAgent(port, cert, "subscriptiongggggggggg", current_server_certificate().thumbprint)
    stale = stale_poll(agent)
    assert agent.poll(wait=0) == (200, {"Requests": []})  # the agent is back
    health_reaches_the_reconnected_agent(agent, worker)
    stale.close()
