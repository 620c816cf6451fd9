"""The polling endpoint: where polling tentacles connect (default port 10943), mutual TLS.

1. TLS: the server presents its certificate; the agent must present one. Any certificate completes
   the handshake (a self-signed one has no chain), then its thumbprint must belong to a registered
   polling worker whose subscription is the one in the URL. Anything else is refused and logged
   with the thumbprint seen.
2. `GET /poll/<subscription>?wait=N` hands out queued requests (Redis list per subscription). An idle
   agent waits on a threading.Event that one pub/sub listener sets when work is queued, so thousands
   of waiting agents do not mean thousands of Redis connections. A request must never be written to
   a connection the agent left behind (it died, restarted, lost its network path): only the
   subscription's newest long poll takes requests, never one whose agent has closed it, and requests
   that could not be written go back to the head of the queue.
3. `POST /poll/<subscription>/responses` routes answers to the waiting callers, only for requests
   that were addressed to that subscription.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import redis
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from infrastructure.transports.polling import (NOTIFY_CHANNEL, connection_key, owner_key, redis_client, requests_key,
                                                response_key)

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
MAX_WAIT = 60
SEEN_TTL = 180  # agent liveness lives in Redis, not in the database
CONNECTION_TTL = 3600  # far longer than any long poll

# Atomically: up to ARGV[2] requests from KEYS[1], only if ARGV[1] is still the newest connection (KEYS[2]).
TAKE_IF_NEWEST = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local taken = redis.call('LRANGE', KEYS[1], 0, ARGV[2] - 1)
redis.call('LTRIM', KEYS[1], ARGV[2], -1)
return taken
"""


class _TlsSocketIO(io.RawIOBase):
    """A readable file over a pyOpenSSL connection, for http.server."""

    def __init__(self, connection: SSL.Connection):
        self.connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self.connection.recv_into(buffer)
        except (SSL.ZeroReturnError, SSL.SysCallError):
            return 0
        except SSL.WantReadError:
            return 0


class Waiters:
    """Events for subscriptions with an agent waiting, set by one pub/sub listener thread."""

    def __init__(self, redis_url: str):
        self.lock = threading.Lock()
        self.events: dict[str, set[threading.Event]] = {}
        self.redis_url = redis_url
        threading.Thread(target=self._listen, name="polling-notify", daemon=True).start()

    def register(self, subscription: str) -> threading.Event:
        event = threading.Event()
        with self.lock:
            self.events.setdefault(subscription, set()).add(event)
        return event

    def unregister(self, subscription: str, event: threading.Event) -> None:
        with self.lock:
            events = self.events.get(subscription)
            if events:
                events.discard(event)
                if not events:
                    del self.events[subscription]

    def _listen(self) -> None:
        while True:
            try:
                pubsub = redis.Redis.from_url(self.redis_url).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(NOTIFY_CHANNEL)
                for message in pubsub.listen():
                    subscription = message["data"].decode()
                    with self.lock:
                        for event in self.events.get(subscription, ()):
                            event.set()
            except redis.RedisError as error:
                log.warning("polling notifications interrupted (%s); reconnecting", error)
                with self.lock:  # wake everyone: they re-check their queues themselves
                    for events in self.events.values():
                        for event in events:
                            event.set()
                time.sleep(1)


class PollingEndpoint(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address, *, certificate_pem: str, private_key_pem: str, redis_url: str, subscription_for_thumbprint):
        """`subscription_for_thumbprint(thumbprint) -> subscription | None` decides who may connect."""
        self.tls = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.tls.set_min_proto_version(SSL.TLS1_2_VERSION)
        self.tls.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, certificate_pem.encode()))
        self.tls.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, private_key_pem.encode()))
        # Accept any certificate in the handshake: it is pinned by thumbprint right after.
        self.tls.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
        # Bounded: requests wait for a connection instead of opening one per agent.
        self.redis = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=10))
        self.take_if_newest = self.redis.register_script(TAKE_IF_NEWEST)
        self.waiters = Waiters(redis_url)
        self.subscription_for_thumbprint = subscription_for_thumbprint
        super().__init__(address, PollingHandler)  # type: ignore[arg-type]  # finish_request passes the thumbprint

    def finish_request(self, request, client_address):
        # pyOpenSSL needs a blocking socket; kernel timeouts still bound a silent peer.
        request.settimeout(None)
        # Headers and body are separate TLS records: without this, Nagle holds the body back until the
        # agent's delayed ACK (~40 ms per exchange).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        timeval = struct.pack("ll", MAX_WAIT + 30, 0)
        request.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        connection = SSL.Connection(self.tls, request)
        connection.set_accept_state()
        try:
            connection.do_handshake()
        except (SSL.Error, OSError) as error:
            log.warning("polling TLS handshake from %s failed: %r", client_address[0], error)
            request.close()
            return
        certificate = connection.get_peer_certificate()
        thumbprint = hashlib.sha1(certificate.to_cryptography().public_bytes(Encoding.DER)).hexdigest().upper() if certificate else ""  # noqa: S324
        self.RequestHandlerClass(connection, client_address, self, thumbprint=thumbprint, tcp=request)  # type: ignore[call-arg, arg-type]

    def shutdown_request(self, request):
        try:
            if isinstance(request, SSL.Connection):
                request.shutdown()
        except (SSL.Error, OSError):
            pass
        super().shutdown_request(request.get_socket() if isinstance(request, SSL.Connection) else request)


class PollingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PollingEndpoint

    def __init__(self, request, client_address, server, *, thumbprint: str, tcp: socket.socket):
        self.thumbprint, self.tcp = thumbprint, tcp
        super().__init__(request, client_address, server)

    def setup(self):
        self.rfile = io.BufferedReader(_TlsSocketIO(self.request), 65536)
        self.wfile = _TlsWriter(self.request)  # type: ignore[assignment]

    def log_message(self, format, *args):  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    # Answers -------------------------------------------------------------------------------------

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str) -> None:
        self._send(status, {"ErrorMessage": message})

    def _authorise(self, path: str) -> str | None:
        """The subscription in the path, if this client's certificate belongs to it."""
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "poll":
            self._refuse(404, "Not found: agents poll /poll/<subscription>.")
            return None
        subscription = parts[1]
        allowed = self.server.subscription_for_thumbprint(self.thumbprint)
        if allowed != subscription:
            log.warning("refused polling client %s for poll://%s/: certificate thumbprint %s %s", self.client_address[0],
                        subscription, self.thumbprint or "(none)",
                        "is not a registered polling worker" if allowed is None else f"belongs to poll://{allowed}/")
            self._refuse(403, f"Certificate {self.thumbprint or '(none)'} may not poll this subscription.")
            return None
        self.server.redis.set(f"reef:poll:seen:{subscription}", int(time.time()), ex=SEEN_TTL)
        return subscription

    # Verbs ---------------------------------------------------------------------------------------

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        subscription = self._authorise(url.path)
        if subscription is None:
            return
        if url.path.strip("/").count("/") != 1:
            return self._refuse(404, "Not found.")
        try:
            wait = min(MAX_WAIT, max(0.0, float(parse_qs(url.query).get("wait", ["30"])[0])))
        except ValueError:
            return self._refuse(400, "wait must be a number of seconds.")
        # This poll supersedes any older one of the subscription: an agent long-polls once at a time,
        # so an older connection is one it left behind, perhaps half-dead with nobody reading it.
        pipe = self.server.redis.pipeline()
        pipe.incr(connection_key(subscription))
        pipe.expire(connection_key(subscription), CONNECTION_TTL)
        connection = pipe.execute()[0]
        taken = self._take(subscription, connection, wait)
        try:
            self._send(200, {"Requests": [json.loads(raw) for raw in taken]})
        except (SSL.Error, OSError) as error:
            # Not written whole, so the agent cannot have parsed any of it: safe to hand out again.
            self.close_connection = True
            if taken:
                self._put_back(subscription, taken)
                log.info("poll://%s/ went away before taking %d request(s) (%r): queued again", subscription, len(taken), error)

    def _take(self, subscription: str, connection: int, wait: float, most: int = 100) -> list[bytes]:
        keys = [requests_key(subscription), connection_key(subscription)]
        event = self.server.waiters.register(subscription)
        deadline = time.monotonic() + wait
        try:
            while True:
                if self._agent_gone():
                    return []
                taken = self.server.take_if_newest(keys=keys, args=[connection, most])
                if taken is None:
                    return []  # superseded by a newer poll of the same agent
                taken = [raw for raw in taken if not _expired(raw)]
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                event.wait(remaining)
                event.clear()
        finally:
            self.server.waiters.unregister(subscription, event)

    def _agent_gone(self) -> bool:
        """Whether the agent has closed or reset this connection. A write would still succeed (the
        kernel buffers it) and the request would be lost, so look first: a non-blocking TLS-level
        peek, which consumes nothing and tells "no data yet" from end of stream."""
        self.tcp.setblocking(False)
        try:
            return self.request.recv(1, socket.MSG_PEEK) == b""
        except (SSL.WantReadError, SSL.WantWriteError):
            return False  # connected, nothing sent: a waiting agent
        except (SSL.Error, OSError):
            return True
        finally:
            self.tcp.setblocking(True)

    def _put_back(self, subscription: str, taken: list[bytes]) -> None:
        pipe = self.server.redis.pipeline()
        pipe.lpush(requests_key(subscription), *reversed(taken))  # at the head, in their order
        pipe.publish(NOTIFY_CHANNEL, subscription)
        pipe.execute()

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        subscription = self._authorise(url.path)
        if subscription is None:
            return
        if url.path.strip("/").split("/")[2:] != ["responses"]:
            return self._refuse(404, "Not found.")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._refuse(411, "Content-Length is required.")
        if length > MAX_BODY:
            return self._refuse(413, f"Bodies are at most {MAX_BODY} bytes.")
        try:
            body = json.loads(self.rfile.read(length))
            responses = body["Responses"]
            assert isinstance(responses, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._refuse(400, 'Expected JSON {"Responses": [envelope, ...]}.')
        accepted = 0
        for envelope in responses:
            request_id = envelope.get("Id") if isinstance(envelope, dict) else None
            if not isinstance(request_id, str) or self.server.redis.get(owner_key(request_id)) != subscription.encode():
                continue  # not a request of this subscription: never routed
            pipe = self.server.redis.pipeline()
            pipe.rpush(response_key(request_id), json.dumps(envelope))
            pipe.expire(response_key(request_id), 600)
            pipe.execute()
            accepted += 1
        self._send(200, {"Accepted": accepted})


def _expired(raw: bytes) -> bool:
    envelope = json.loads(raw)
    return envelope.get("QueuedAt", 0) + envelope.get("ExpiresInSeconds", 1e9) < time.time()  # its caller gave up


class _TlsWriter(io.RawIOBase):
    def __init__(self, connection: SSL.Connection):
        self.connection = connection

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.connection.sendall(bytes(data))
        return len(data)


class ThumbprintDirectory:
    """Which subscription a certificate may poll, from the database, cached briefly in memory.

    Each agent is served by its own thread, and Django holds a database connection per thread: the
    lookup closes its thread's connection at once, so connections never scale with agents, and the
    cache keeps the database out of the hot path (known agents 30 s, strangers 5 s).
    """

    KNOWN_SECONDS, UNKNOWN_SECONDS = 30, 5

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[str | None, float]] = {}

    def __call__(self, thumbprint: str) -> str | None:
        now = time.monotonic()
        with self.lock:
            cached = self.entries.get(thumbprint)
        if cached and cached[1] > now:
            return cached[0]
        from django.db import connection

        from infrastructure.models import Worker

        try:
            uri = (Worker.objects.filter(communication_style=Worker.CommunicationStyle.POLLING, thumbprint=thumbprint)
                   .values_list("uri", flat=True).first())
        finally:
            connection.close()
        subscription = uri.removeprefix("poll://").rstrip("/") if uri else None
        with self.lock:
            if len(self.entries) > 100_000:
                self.entries.clear()
            self.entries[thumbprint] = (subscription, now + (self.KNOWN_SECONDS if subscription else self.UNKNOWN_SECONDS))
        return subscription


def serve_polling_endpoint(host: str, port: int, redis_url: str) -> PollingEndpoint:
    """Build the endpoint with the server certificate and the database's polling workers."""
    from infrastructure.services.certificates import current_server_certificate, server_private_key_pem

    certificate = current_server_certificate()
    return PollingEndpoint((host, port), certificate_pem=certificate.certificate_pem,
                           private_key_pem=server_private_key_pem(certificate), redis_url=redis_url,
                           subscription_for_thumbprint=ThumbprintDirectory())

