"""A real listening agent: registered with the CLI against a live Reef, health-checked and running
scripts through the server's listening transport, mutual TLS pinned both ways."""

import pytest

from infrastructure.models import Worker
from infrastructure.services import health
from infrastructure.services.policies import create_machine_policy
from infrastructure.transports import TransportError
from infrastructure.transports.listening import ListeningTransport
from portal.services.api_keys import create_api_key
from tests.agent.harness import Agent, descendant_running, free_port, tentacle, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def api_key(administrator):
    return create_api_key(actor=administrator, user=administrator, purpose="agent tests")[1]


@pytest.fixture
def listening_agent(live_reef, api_key, tmp_path, space):
    agent = Agent(tmp_path / "agent").create(listening_port=free_port())
    result = agent.register(live_reef, api_key, polling=False)
    assert result.returncode == 0, result.stderr
    agent.start()
    yield agent
    agent.stop()


def test_a_registered_listening_agent_turns_healthy_with_its_capabilities(listening_agent, space):
    worker = Worker.objects.get(name="agent")
    assert (
        worker.uri == f"https://127.0.0.1:{listening_agent.port}/" and worker.thumbprint == listening_agent.thumbprint
    )
    checked = health.check_worker_health(worker.pk)
    assert checked.health_status == "Healthy", checked.health_check_log
    assert checked.capabilities["AgentVersion"] == "0.1.0" and "bash" in checked.capabilities["Shells"]


def test_scripts_run_through_the_listening_transport(listening_agent):
    transport = ListeningTransport(Worker.objects.get(name="agent"))
    code, lines = transport.run_script("echo hi; echo oops >&2; exit 4", "Bash", timeout=30)
    assert code == 4
    assert [(line["Stream"], line["Text"]) for line in lines] == [("stdout", "hi"), ("stderr", "oops")] or sorted(
        (line["Stream"], line["Text"]) for line in lines
    ) == [("stderr", "oops"), ("stdout", "hi")]


def test_the_server_refuses_an_agent_whose_certificate_changed(listening_agent, administrator):
    worker = Worker.objects.get(name="agent")
    Worker.objects.filter(pk=worker.pk).update(thumbprint="0" * 40)
    with pytest.raises(TransportError, match="not the pinned 0000"):
        ListeningTransport(Worker.objects.get(pk=worker.pk)).call("Health")


def test_the_agent_refuses_a_server_it_does_not_trust(listening_agent, administrator):
    from infrastructure.services.certificates import rotate_server_certificate
    from infrastructure.transports.listening import _client_context

    rotate_server_certificate(actor=administrator)  # the server now presents a certificate the agent never trusted
    _client_context.cache_clear()
    with pytest.raises(TransportError, match="TLS handshake|Could not reach"):
        ListeningTransport(Worker.objects.get(name="agent")).call("Health")
    assert listening_agent.process.poll() is None, "the agent keeps serving"


def test_killing_the_agent_mid_script_fails_the_caller_promptly(listening_agent, space, administrator):
    import threading
    import time

    policy = create_machine_policy(actor=administrator, space=space, name="Quick", connect_timeout=3, retry_count=0)
    Worker.objects.filter(name="agent").update(machine_policy=policy)
    transport = ListeningTransport(Worker.objects.get(name="agent"))
    outcome = {}

    def run():
        try:
            transport.run_script("sleep 60", "Bash", timeout=120)
        except TransportError as error:
            outcome["error"] = str(error)

    caller = threading.Thread(target=run)
    started = time.monotonic()
    caller.start()
    wait_until(
        lambda: descendant_running(listening_agent.process.pid, "sleep 60"), timeout=30, what="the script running"
    )
    listening_agent.kill()
    caller.join(30)
    assert "error" in outcome and time.monotonic() - started < 30


def test_registration_with_an_unknown_pool_or_a_bad_key_changes_nothing(live_reef, api_key, tmp_path, space):
    agent = Agent(tmp_path / "agent").create(listening_port=free_port())
    before = (tmp_path / "agent" / "tentacle.json").read_text()
    unknown_pool = agent.register(live_reef, api_key, polling=False, pools=("No such pool",))
    assert unknown_pool.returncode != 0 and "No worker pool named 'No such pool'" in unknown_pool.stderr
    bad_key = agent.register(live_reef, "API-WRONGWRONGWRONG", polling=False)
    assert bad_key.returncode != 0 and "refused the API key" in bad_key.stderr
    unreachable = agent.register(f"http://127.0.0.1:{free_port()}", api_key, polling=False)
    assert unreachable.returncode != 0 and "Cannot reach" in unreachable.stderr
    assert (tmp_path / "agent" / "tentacle.json").read_text() == before and not Worker.objects.exists()
    assert "API-" not in before


def test_the_cli_explains_wrong_arguments(tmp_path):
    missing = tentacle(tmp_path / "nowhere", "show-thumbprint", check=False)
    assert missing.returncode == 1 and "create-instance" in missing.stderr


def test_malformed_and_oversized_requests_get_clear_errors_and_the_agent_keeps_serving(listening_agent):
    import http.client
    import json

    from infrastructure.transports.listening import server_tls_context

    def post(body: bytes, headers=None):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", listening_agent.port, context=server_tls_context(), timeout=10
        )
        connection.request("POST", "/script-service", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    assert post(b"{broken") == (400, {"ErrorMessage": "The body is not JSON."})
    status, body = post(b"", {"Content-Length": str(10**12)})
    assert status == 413 and "at most" in body["ErrorMessage"]
    status, body = post(json.dumps({"Id": "x", "Method": "Explode"}).encode())
    assert status == 200 and body["Error"]["Kind"] == "BadRequest"
    assert ListeningTransport(Worker.objects.get(name="agent")).call("Health")["AgentVersion"] == "0.1.0"
