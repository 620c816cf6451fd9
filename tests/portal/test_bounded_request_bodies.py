"""Request bodies are bounded before anything reads them, against a real daphne: a declared length over the limit is
answered 413 at once, unread; bad lengths are 400; a chunked body is cut at the limit; an anonymous 1 GB POST and a
300 MB package upload leave daphne's memory where it was, and the upload is stored by its SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.test import Client

from deployments.models import Package
from portal.request_limits import BoundedBodyMiddleware
from portal.services import users
from tests.e2e.conftest import ROOT, free_port, server_env, wait_for_http

MiB = 1024 * 1024
RSS_SLACK = 50 * MiB  # issue 11: memory back within 50 MB of where it was
BLOCK = os.urandom(MiB)


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    port = free_port()
    with django_db_blocker.unblock():
        env = server_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class PeakRss:
    """Samples a process's RSS while a request runs: the peak, not just what is left after, is what must stay flat."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, rss(pid), threading.Event()
        self.before = self.peak

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss(self.pid))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after = rss(self.pid)
        self.peak = max(self.peak, self.after)


def read_response(sock: socket.socket, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    length = int(headers.get("content-length", len(body)))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def send_head(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head.encode("latin-1"))
    return sock


def post_streamed(
    port: int, path: str, parts, length: int, extra_headers: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """POST a body generated piece by piece (never held whole), with a declared length; then read the answer."""
    sock = send_head(
        port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n{extra_headers}\r\n"
    )
    with sock:
        for part in parts:
            sock.sendall(part)
        return read_response(sock)


def test_a_declared_length_over_the_limit_is_answered_413_before_any_body_is_sent(daphne):
    _, port = daphne
    with send_head(
        port, "POST /api/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n"
    ) as sock:
        status, headers, body = read_response(sock, timeout=5)  # nothing of the body was sent
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["ErrorMessage"] == "The request body is larger than the limit of 10 MiB (10485760 bytes)."

    # A package upload path takes a larger body, but not one over REEF_PACKAGE_MAX_BYTES.
    path = "/Spaces-1/library/packages/"
    with send_head(port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {2 * 1024**3}\r\n\r\n") as sock:
        status, _, body = read_response(sock, timeout=5)
    assert status == 413 and b"limit of 1 GiB" in body


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: -1",
        "Content-Length: ten",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
    ],
)
def test_negative_malformed_and_conflicting_lengths_are_400(daphne, framing):
    _, port = daphne
    with send_head(port, f"POST /api/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n\r\nhello") as sock:
        status, headers, body = read_response(sock, timeout=5)
    assert status == 400 and headers["content-type"] == "application/json"
    assert "Content-Length, Transfer-Encoding" in json.loads(body)["ErrorMessage"]


def test_a_chunked_body_is_counted_and_cut_at_the_limit(daphne):
    process, port = daphne
    sock = send_head(port, "POST /api/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0
    with sock, PeakRss(process.pid) as memory:
        while not select.select([sock], [], [], 0)[0]:  # send until daphne answers
            sock.sendall(b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n")
            sent += len(BLOCK)
            assert sent < 200 * MiB, "daphne kept reading far past the limit"
        status, headers, body = read_response(sock, timeout=5)
    assert status == 413 and "limit of 10 MiB" in json.loads(body)["ErrorMessage"]
    assert memory.peak - memory.before < RSS_SLACK, vars(memory)


def test_the_middleware_refuses_by_itself_under_any_asgi_server():
    """Without daphne's layer (another ASGI server), the middleware applies the same rules."""
    seen = []

    async def app(scope, receive, send):
        while (await receive())["more_body"]:
            pass
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def call(headers, chunks):
        sent = []
        messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
        ]

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": "/api/spaces", "headers": headers}
        # In a thread of its own: Playwright's sync API may have left a loop running in this one.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, BoundedBodyMiddleware(app)(scope, receive, send)).result()
        return sent[0]["status"], sent[1]["body"]

    assert call([(b"content-length", b"-1")], [b""])[0] == 400
    assert call([(b"content-length", b"3"), (b"content-length", b"4")], [b"abc"])[0] == 400
    status, body = call([(b"content-length", b"%d" % (11 * MiB))], [b""])
    assert status == 413 and "10 MiB" in json.loads(body)["ErrorMessage"]
    status, body = call([(b"transfer-encoding", b"chunked")], [BLOCK] * 11)  # counted while read
    assert status == 413
    assert call([(b"content-length", b"3")], [b"abc"])[0] == 204
    assert seen == ["/api/spaces"]


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_1gb_post_leaves_daphne_memory_where_it_was(daphne):
    process, port = daphne
    total = 1000 * 1000 * 1000  # under the package path's 1 GiB limit, so daphne really takes it in
    path = "/Spaces-1/library/packages/"
    status, _, _ = post_streamed(port, path, (b"x" * MiB for _ in range(2)), 2 * MiB)  # warm up
    whole, rest = divmod(total, MiB)
    with PeakRss(process.pid) as memory:
        status, headers, _ = post_streamed(
            port,
            path,
            (*(BLOCK for _ in range(whole)), BLOCK[:rest]),
            total,
            "Content-Type: application/octet-stream\r\n",
        )
    assert status in (302, 403)  # anonymous: refused (no CSRF cookie) or sent to sign in
    assert memory.peak - memory.before < RSS_SLACK, vars(memory)


def stored_zip(name: bytes, blocks: int) -> tuple[bytes, bytes, int]:
    """A zip with one stored entry of `blocks` MiB: its header and trailer, to send around the streamed data."""
    size, crc = MiB * blocks, 0
    for _ in range(blocks):
        crc = zlib.crc32(BLOCK, crc)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, size, size, len(name), 0) + name
    central = (
        struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, size, size, len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + size, 0)
    return local, central + end, size


@pytest.mark.django_db(transaction=True)
def test_a_300mb_package_upload_is_streamed_to_disk_and_stored_by_its_sha256(daphne, space):
    process, port = daphne
    administrator, _ = users.ensure_first_administrator(username="administrator", password="a-Long-test-passw0rd")
    client = Client()
    client.force_login(administrator, backend="django.contrib.auth.backends.ModelBackend")
    session, csrf = client.cookies[settings.SESSION_COOKIE_NAME].value, "c" * 32
    cookies = f"Cookie: {settings.SESSION_COOKIE_NAME}={session}; csrftoken={csrf}\r\nX-CSRFToken: {csrf}\r\n"

    blocks = 300
    header, trailer, _ = stored_zip(b"site/index.bin", blocks)
    digest = hashlib.sha256(header)
    for _ in range(blocks):
        digest.update(BLOCK)
    digest.update(trailer)
    boundary = "reefboundary7d93"
    fields = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (("package_id", "bigsite"), ("version", "3.0.0"))
    )
    opening = (
        fields + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bigsite.3.0.0.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode() + header
    closing = trailer + f"\r\n--{boundary}--\r\n".encode()
    length = len(opening) + blocks * MiB + len(closing)

    page = f"/{space.octopus_id}/library/packages/"
    status, _, _ = post_streamed(
        port, page, [b"package_id=x"], 12, cookies + "Content-Type: application/x-www-form-urlencoded\r\n"
    )
    assert status == 400  # warm up: the page answered, with its form error
    started = time.monotonic()
    with PeakRss(process.pid) as memory:
        status, headers, body = post_streamed(
            port,
            page,
            (opening, *(BLOCK for _ in range(blocks)), closing),
            length,
            cookies + f"Content-Type: multipart/form-data; boundary={boundary}\r\n",
        )
    assert status == 302, body[:2000]
    assert memory.peak - memory.before < RSS_SLACK, vars(memory)
    package = Package.objects.get(package_id="bigsite")
    assert package.sha256 == digest.hexdigest() and package.size == len(header) + blocks * MiB + len(trailer)
    stored = settings.VAR_DIR / "packages" / package.sha256
    assert stored.stat().st_size == package.size
    assert time.monotonic() - started < 120


def test_two_thousand_idle_sockets_cost_daphne_no_threads_and_little_memory(daphne):
    """Slow or idle clients hold a socket each, not a thread: daphne (Twisted) serves them from one loop,
    answers a real request meanwhile, and its memory is back within the slack once they are gone."""
    import resource

    process, port = daphne
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))

    def threads():
        return int(next(line for line in open(f"/proc/{process.pid}/status") if line.startswith("Threads:")).split()[1])

    before_threads, before_rss = threads(), rss(process.pid)
    idle = []
    try:
        for _ in range(2000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert answer.status == 200
        assert threads() <= before_threads + 10, "a thread per idle socket"
    finally:
        for sock in idle:
            sock.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
        assert answer.status == 200
    assert rss(process.pid) - before_rss < RSS_SLACK
