"""A listening agent under idle and hostile clients: 2,000 idle sockets cost it no threads and never
lock out the trusted server; trusted connections are capped; bad Content-Length is refused clearly.
A real agent process (`tentacle run`), trusting a certificate made here; no Reef server needed."""

import http.client
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tentacle_agent.certificates import generate_certificate, write_private_file
from tentacle_agent.config import Instance
from tests.agent.stdio_agent import ROOT, wait_until
from tests.e2e.conftest import free_port


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.fixture(scope="module")
def server_identity(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    certificate, key = generate_certificate("Reef Server")
    write_private_file(folder / "server.pem", certificate + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(str(folder / "server.pem"))
    return certificate, context


@pytest.fixture
def agent(tmp_path, server_identity):
    certificate, context = server_identity
    instance = Instance(tmp_path / "agent")
    instance.create()
    instance.trust(certificate)
    port = free_port()
    config = instance.load()
    config.update(Port=port, ListenIp="127.0.0.1", MaxConnections=20)
    instance.save(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "tentacle_agent", "run", "--home", str(instance.home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("Reef tentacle listening"):
            break
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    yield process, port, context
    process.terminate()
    process.wait(10)


def call(port, context, method="Health", body=None, headers=None):
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=20)
    data = body if body is not None else json.dumps({"Id": "1", "Method": method, "Params": {}}).encode()
    connection.request("POST", "/script-service", body=data, headers=headers or {})
    response = connection.getresponse()
    answer = response.status, json.loads(response.read() or b"{}")
    connection.close()
    return answer


def test_two_thousand_idle_sockets_cost_no_threads_and_the_server_still_gets_in(agent):
    process, port, context = agent
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    before = threads_of(process.pid)
    idle = []
    try:
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", port))
            idle.append(s)
        wait_until(lambda: threads_of(process.pid) >= before)  # it has seen them
        most = max(threads_of(process.pid) for _ in range(20))
        assert most <= before + 2, f"{most} threads for idle sockets (before: {before})"
        status, answer = call(port, context)  # while all 2,000 are still open
        assert status == 200 and answer["Result"]["AgentVersion"]
    finally:
        for s in idle:
            s.close()
    status, answer = call(port, context)
    assert status == 200 and answer["Result"]["ProcessId"] == process.pid


def test_trusted_connections_past_the_cap_are_closed_at_once(agent):
    process, port, context = agent
    held = []
    try:
        for _ in range(20):  # MaxConnections
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            connection.connect()
            held.append(connection)
        wait_until(lambda: threads_of(process.pid) >= 20)
        over = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        with pytest.raises((ConnectionError, http.client.HTTPException, ssl.SSLError, OSError)):
            over.request("POST", "/script-service", body=b"{}")
            over.getresponse().read()
        assert threads_of(process.pid) <= 20 + 6
    finally:
        for connection in held:
            connection.close()
    assert wait_until(lambda: call(port, context)[0] == 200)


@pytest.mark.parametrize(
    "value,status,message",
    [
        ("-1", 400, "Content-Length must be a whole number of bytes, not '-1'."),
        ("ten", 400, "Content-Length must be a whole number of bytes, not 'ten'."),
        (str(10**12), 413, f"Requests are at most {512 * 1024 * 1024} bytes."),
    ],
)
def test_a_bad_content_length_is_refused_with_a_reason(agent, value, status, message):
    _, port, context = agent
    raw = ssl_socket(port, context)
    raw.sendall(f"POST /script-service HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n".encode())
    head = b""
    while chunk := raw.recv(65536):  # the agent closes the connection after refusing
        head += chunk
    head = head.decode()
    raw.close()
    assert head.startswith(f"HTTP/1.1 {status} ") and json.loads(head.split("\r\n\r\n", 1)[1]) == {
        "ErrorMessage": message
    }
    assert call(port, context)[0] == 200


def test_a_missing_content_length_is_411(agent):
    _, port, context = agent
    raw = ssl_socket(port, context)
    raw.sendall(b"POST /script-service HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert raw.recv(65536).decode().startswith("HTTP/1.1 411 ")
    raw.close()


def test_an_untrusted_client_is_refused_and_costs_nothing(agent):
    process, port, _ = agent
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stranger.check_hostname, stranger.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        raw = stranger.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if not raw.recv(100):
            raise ConnectionError("closed")
    assert process.poll() is None


def ssl_socket(port, context):
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))


if os.name != "posix":  # /proc is Linux's
    pytestmark = pytest.mark.skip
