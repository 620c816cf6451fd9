"""The polling endpoint under hostile or unlucky input: a TLS read that would block is not end of
stream, a bad Content-Length is refused with a reason, and 2,000 idle sockets cost neither threads
nor the next agent's request."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from OpenSSL import SSL

from infrastructure.services.certificates import current_server_certificate
from infrastructure.transports.polling_endpoint import MAX_BODY, TlsSocketIO
from tests.infrastructure.test_polling_endpoint import StandInAgent, agent_certificate, endpoint, register_poller  # noqa: F401
from tests.waiting import wait_until


def raw_request(port: int, cert: str, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain, context.wrap_socket(plain) as tls:
        tls.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            dict(line.split(b": ", 1) for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]).get(
                b"Content-Length", b"0"
            )
        ):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


@pytest.fixture
def poller(endpoint, space, administrator, tmp_path):
    port, process = endpoint
    cert, thumb = agent_certificate(tmp_path, "agent")
    register_poller(space, administrator, "poller", "subscriptionbounds0000", thumb)
    return (
        port,
        process,
        cert,
        StandInAgent(port, cert, "subscriptionbounds0000", current_server_certificate().thumbprint),
    )


@pytest.mark.parametrize(
    "header, status, reason",
    [
        (b"Content-Length: -1\r\n", 400, "whole number"),
        (b"", 400, "Content-Length is required"),
        (b"Content-Length: lots\r\n", 400, "whole number"),
        (f"Content-Length: {MAX_BODY + 1}\r\n".encode(), 413, "at most"),
    ],
)
def test_a_bad_content_length_is_refused_with_a_reason(poller, header, status, reason):
    port, process, cert, agent = poller
    head = b"POST /poll/subscriptionbounds0000/responses HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
    answer = raw_request(port, cert, head)
    assert answer[0] == status and reason in answer[1]["ErrorMessage"], answer
    assert agent.poll(wait=0) == (200, {"Requests": []}) and process.poll() is None


def test_a_tls_read_that_would_block_waits_for_the_data_instead_of_ending_the_stream(tmp_path):
    """The record arrives half a second after the read starts, on a non-blocking socket."""
    pem, _ = agent_certificate(tmp_path, "endpoint")
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_file(pem)
    context.use_privatekey_file(pem)
    server_side, client_side = socket.socketpair()
    server = SSL.Connection(context, server_side)
    server.set_accept_state()
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
    client = {}
    handshaken = threading.Thread(target=lambda: client.update(tls=client_context.wrap_socket(client_side)))
    handshaken.start()
    server.do_handshake()
    handshaken.join(10)

    def late_writer():
        time.sleep(0.5)
        client["tls"].sendall(b"the answer")

    threading.Thread(target=late_writer).start()
    server_side.setblocking(False)  # as the endpoint's liveness peek leaves it between reads
    buffer = bytearray(100)
    started = time.monotonic()
    count = TlsSocketIO(server).readinto(buffer)
    assert bytes(buffer[:count]) == b"the answer", "a read that would block is not end of stream"
    assert time.monotonic() - started >= 0.4
    client["tls"].close()


def process_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def accept_queue(port: int) -> int:
    """Connections the kernel completed for the listening port that the endpoint has not accepted yet
    (a LISTEN socket's rx_queue in /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_two_thousand_idle_sockets_cost_no_threads_and_an_agent_still_gets_through(poller):
    port, process, cert, agent = poller
    assert agent.poll(wait=0) == (200, {"Requests": []})
    before = process_threads(process.pid)
    idle = []
    try:
        for _ in range(2000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        wait_until(lambda: accept_queue(port) == 0, timeout=30, what="the endpoint accepting all 2,000 connections")
        during = process_threads(process.pid)
        assert during <= before + 20, f"{during} threads with 2,000 idle sockets (was {before})"  # not 2,000
        fds = Path(f"/proc/{process.pid}/fd")
        assert wait_until(lambda: len(list(fds.iterdir())) < 1100, timeout=10), "idle sockets held are capped"
        status, body = agent.poll(wait=0)  # while they are still open
        assert (status, body) == (200, {"Requests": []}), (status, body)
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: agent.poll(wait=0) == (200, {"Requests": []}), timeout=10)
    assert process_threads(process.pid) <= before + 20 and process.poll() is None
