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
4. Liveness: an open long poll is the agent's heartbeat. Its presence key is set when a poll starts
   and refreshed every second while it waits; no database write per poll. A thread sweeps presence
   into worker health every few seconds (services/liveness.py).
5. Delivery: StartScript requests handed out are remembered until the agent acknowledges their ids
   on its next poll (`?ack=id1,id2`); one not acknowledged within ACK_SECONDS is put back once.
6. Bounded: accepted connections wait, without a thread, for their first bytes (at most MAX_PENDING,
   the oldest closed beyond it, each for HANDSHAKE_TIMEOUT); then a bounded pool of MAX_THREADS
   serves them, with at most MAX_QUEUED waiting for a thread (beyond it closed at once).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import select
import selectors
import socket
import socketserver
import struct
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import cast
from urllib.parse import parse_qs, urlparse

import redis
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from infrastructure.transports.polling import (NOTIFY_CHANNEL, PRESENCE_TTL, connection_key, handed_key, owner_key,
                                                presence_key, redelivered_key, requests_key, response_key, unacked_key)

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
MAX_WAIT = 60
CONNECTION_TTL = 3600  # far longer than any long poll
ACK_SECONDS = 5  # a StartScript not acknowledged this long after it was handed out is put back (once)
DELIVERY_TTL = 24 * 3600
FALLBACK_TICKS = 5  # seconds between looks at the queue of a poll that was not notified
HANDSHAKE_TIMEOUT = 10  # seconds from accept to the first bytes, and for the TLS handshake
IO_TIMEOUT = 15  # seconds any one read or write of a request may stall
MAX_THREADS, MAX_QUEUED, MAX_PENDING = 512, 256, 1024  # defaults of the REEF_POLLING_MAX_* settings
_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")

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
        """WantRead means no TLS record is complete yet (or the socket's timeout passed), not end of
        stream: wait for the socket to be readable, with the I/O timeout, and try again."""
        while True:
            try:
                return self.connection.recv_into(buffer)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return 0
            except SSL.WantReadError:
                readable, _, _ = select.select([self.connection.fileno()], [], [], IO_TIMEOUT)
                if not readable:
                    raise TimeoutError(f"no data for {IO_TIMEOUT}s") from None


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

    def _wake_all(self) -> None:
        with self.lock:
            for events in self.events.values():
                for event in events:
                    event.set()

    def _listen(self) -> None:
        reconnecting = False
        while True:
            try:
                # A health check interval makes a silently dropped connection (a Redis restart) an error.
                pubsub = redis.Redis.from_url(self.redis_url, health_check_interval=5, socket_connect_timeout=5,
                                              socket_keepalive=True).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(NOTIFY_CHANNEL)
                if reconnecting:
                    log.info("polling notifications resumed")
                    self._wake_all()  # anything queued while we were away
                reconnecting = False
                while True:
                    message = pubsub.get_message(timeout=5)
                    if message is None:
                        pubsub.ping()  # raises if the connection is gone
                        continue
                    if message.get("type") != "message":
                        continue  # the answer to our ping
                    subscription = message["data"].decode()
                    with self.lock:
                        for event in self.events.get(subscription, ()):
                            event.set()
            except (redis.RedisError, OSError, ValueError) as error:
                reconnecting = True
                log.warning("polling notifications interrupted (%s); reconnecting", error)
                self._wake_all()  # everyone re-checks their queue themselves
                time.sleep(1)


class PollingEndpoint(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address, *, certificate_pem: str, private_key_pem: str, redis_url: str, subscription_for_thumbprint,
                 sweep_liveness=None):
        """`subscription_for_thumbprint(thumbprint) -> subscription | None` decides who may connect;
        `sweep_liveness()`, if given, runs every few seconds in its own thread."""
        self.tls = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.tls.set_min_proto_version(SSL.TLS1_2_VERSION)
        self.tls.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, certificate_pem.encode()))
        self.tls.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, private_key_pem.encode()))
        # Accept any certificate in the handshake: it is pinned by thumbprint right after.
        self.tls.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
        # Bounded: requests wait for a connection instead of opening one per agent.
        self.redis = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            redis_url, max_connections=64, timeout=10, socket_connect_timeout=5, health_check_interval=30))
        self.take_if_newest = self.redis.register_script(TAKE_IF_NEWEST)
        self.waiters = Waiters(redis_url)
        self.subscription_for_thumbprint = subscription_for_thumbprint
        from django.conf import settings

        # One thread per open long poll: max_threads is how many agents are served at once.
        self.max_threads = getattr(settings, "REEF_POLLING_MAX_THREADS", MAX_THREADS)
        self.max_queued = getattr(settings, "REEF_POLLING_MAX_QUEUED", MAX_QUEUED)
        self.max_pending = getattr(settings, "REEF_POLLING_MAX_PENDING", MAX_PENDING)
        self.pool = ThreadPoolExecutor(max_workers=self.max_threads, thread_name_prefix="polling")
        self.busy_lock = threading.Lock()
        self.queued = 0  # handed to the pool, not yet running
        self.gate = _Gate(self)
        self.stopping = threading.Event()
        self.polls_lock = threading.Lock()
        self.open_polls: dict[str, int] = {}  # subscription -> long polls open on this endpoint
        super().__init__(address, PollingHandler)  # type: ignore[arg-type]  # finish_request passes the thumbprint
        threading.Thread(target=_every, args=(1.0, self.heartbeat), name="polling-heartbeat", daemon=True).start()
        if sweep_liveness is not None:
            threading.Thread(target=_every, args=(2.0, sweep_liveness), name="polling-liveness", daemon=True).start()

    def open_poll(self, subscription: str, change: int) -> None:
        with self.polls_lock:
            count = self.open_polls.get(subscription, 0) + change
            if count > 0:
                self.open_polls[subscription] = count
            else:
                self.open_polls.pop(subscription, None)

    def heartbeat(self) -> None:
        """Every second, for every open long poll at once (one pipeline, not one per agent): refresh
        the agents' presence, and put back StartScripts they did not acknowledge in time."""
        with self.polls_lock:
            subscriptions = list(self.open_polls)
        if not subscriptions:
            return
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        for subscription in subscriptions:
            pipe.set(presence_key(subscription), int(now), ex=PRESENCE_TTL)
            pipe.zrangebyscore(unacked_key(subscription), "-inf", now - ACK_SECONDS, start=0, num=100)
        results = pipe.execute()
        for subscription, overdue in zip(subscriptions, results[1::2]):
            if overdue:
                _redeliver(self.redis, subscription, overdue)

    def process_request(self, request, client_address):
        self.gate.admit(request, client_address)

    def dispatch(self, request, client_address) -> None:
        """A connection has sent its first bytes: serve it on the pool, or close it if too many wait."""
        with self.busy_lock:
            if self.queued >= self.max_queued:
                full = True
            else:
                full, self.queued = False, self.queued + 1
        if full:
            _rarely(log.warning, "polling endpoint busy (%d connections waiting for a thread): closing new ones", self.max_queued)
            _close(request)
            return
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request, client_address) -> None:
        with self.busy_lock:
            self.queued -= 1
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure must not end the thread
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self):
        """Open long polls answer at once (empty), so the threads end within a second or two."""
        self.stopping.set()
        super().server_close()
        self.gate.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def finish_request(self, request, client_address):
        # pyOpenSSL needs a blocking socket; kernel timeouts still bound a silent peer.
        request.settimeout(None)
        # Headers and body are separate TLS records: without this, Nagle holds the body back until the
        # agent's delayed ACK (~40 ms per exchange).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set_timeouts(request, HANDSHAKE_TIMEOUT)
        connection = SSL.Connection(self.tls, request)
        connection.set_accept_state()
        try:
            connection.do_handshake()
        except (SSL.Error, OSError) as error:
            # A peer that connects and leaves (a port scan, a flood) is routine: not a warning each time.
            quiet = isinstance(error, (SSL.SysCallError, OSError)) or "WantRead" in type(error).__name__
            (log.debug if quiet else log.warning)("polling TLS handshake from %s failed: %r", client_address[0], error)
            request.close()
            return
        _set_timeouts(request, IO_TIMEOUT)  # headers and bodies: a stalled peer frees its thread
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


def _set_timeouts(sock: socket.socket, seconds: int) -> None:
    timeval = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


_last_said: dict[str, float] = {}


def _rarely(say, message: str, *args) -> None:
    """At most one such line a minute: a flood must not become a flood of log lines."""
    now = time.monotonic()
    if now - _last_said.get(message, -1e9) >= 60:
        _last_said[message] = now
        say(message, *args)


def _every(seconds: float, function) -> None:
    while True:
        started = time.monotonic()
        try:
            function()
        except Exception:  # noqa: BLE001 - the sweep must outlive a database or Redis blip
            log.exception("liveness sweep failed; trying again")
        time.sleep(max(0.2, seconds - (time.monotonic() - started)))


class _Gate:
    """Accepted connections wait here, in one thread and one selector, until their first bytes
    arrive: idle sockets cost a file descriptor, never a thread. At most MAX_PENDING wait (the oldest
    is closed to make room) and none longer than HANDSHAKE_TIMEOUT."""

    def __init__(self, server: PollingEndpoint):
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.pending: OrderedDict[socket.socket, tuple[tuple, float]] = OrderedDict()
        self.incoming: list[tuple[socket.socket, tuple]] = []
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.running = True
        threading.Thread(target=self._run, name="polling-gate", daemon=True).start()

    def admit(self, request: socket.socket, client_address) -> None:
        with self.lock:
            self.incoming.append((request, client_address))
        try:
            self.wake_w.send(b"x")
        except BlockingIOError:
            pass

    def stop(self) -> None:
        self.running = False
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def _run(self) -> None:
        while self.running:
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the gate must outlive any one connection's surprise
                log.exception("polling endpoint gate: unexpected error; carrying on")
                time.sleep(0.1)

    def _step(self) -> None:
        for key, _ in self.selector.select(timeout=1):
            if key.fileobj is self.wake_r:
                try:
                    self.wake_r.recv(4096)
                except BlockingIOError:
                    pass
                continue
            sock = cast(socket.socket, key.fileobj)
            address, _ = self.pending.pop(sock)
            self.selector.unregister(sock)
            if _closed_by_peer(sock):
                _close(sock)  # it left before saying anything: no thread for that
            else:
                self.server.dispatch(sock, address)
        with self.lock:
            incoming, self.incoming = self.incoming, []
        now = time.monotonic()
        for sock, address in incoming:
            while len(self.pending) >= self.server.max_pending:
                oldest, (oldest_address, _) = self.pending.popitem(last=False)
                self.selector.unregister(oldest)
                _rarely(log.warning, "polling endpoint: %d connections waiting for their first bytes; closing the oldest",
                        self.server.max_pending)
                _close(oldest)
            self.pending[sock] = (address, now)
            self.selector.register(sock, selectors.EVENT_READ)
        while self.pending:  # oldest first: stop at the first that may still wait
            sock, (address, accepted) = next(iter(self.pending.items()))
            if now - accepted < HANDSHAKE_TIMEOUT:
                break
            del self.pending[sock]
            self.selector.unregister(sock)
            _close(sock)


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
        self._present(subscription)
        return subscription

    def _present(self, subscription: str) -> None:
        """The agent is connected: its presence lasts PRESENCE_TTL seconds past the last refresh."""
        pipe = self.server.redis.pipeline(transaction=False)
        pipe.set(presence_key(subscription), int(time.time()), ex=PRESENCE_TTL)
        pipe.set(f"reef:poll:seen:{subscription}", int(time.time()), ex=180)  # last seen, for people and benches
        pipe.execute()

    # Verbs ---------------------------------------------------------------------------------------

    def do_GET(self):  # noqa: N802
        self._carefully(self._get)

    def do_POST(self):  # noqa: N802
        self._carefully(self._post)

    def _carefully(self, verb) -> None:
        """A Redis blip is a 503 the agent retries, not a traceback and a dropped connection."""
        try:
            verb()
        except redis.RedisError as error:
            log.warning("polling request from %s failed: Redis is unavailable (%s)", self.client_address[0], error)
            self.close_connection = True
            try:
                self._refuse(503, "The server cannot reach its queue right now; poll again shortly.")
            except (SSL.Error, OSError):
                pass

    def _get(self):
        url = urlparse(self.path)
        subscription = self._authorise(url.path)
        if subscription is None:
            return
        if url.path.strip("/").count("/") != 1:
            return self._refuse(404, "Not found.")
        query = parse_qs(url.query)
        try:
            wait = min(MAX_WAIT, max(0.0, float(query.get("wait", ["30"])[0])))
        except ValueError:
            return self._refuse(400, "wait must be a number of seconds.")
        acknowledged = [i for value in query.get("ack", []) for i in value.split(",") if i]
        if len(acknowledged) > 1000 or not all(_ID.match(i) for i in acknowledged):
            return self._refuse(400, "ack must be at most 1000 request ids, separated by commas.")
        if acknowledged:
            self._acknowledge(subscription, acknowledged)
        # This poll supersedes any older one of the subscription: an agent long-polls once at a time,
        # so an older connection is one it left behind, perhaps half-dead with nobody reading it.
        pipe = self.server.redis.pipeline()
        pipe.incr(connection_key(subscription))
        pipe.expire(connection_key(subscription), CONNECTION_TTL)
        connection = pipe.execute()[0]
        taken = self._take(subscription, connection, wait)
        try:
            starts = self._remember_handed_out(subscription, taken)
        except redis.RedisError as error:  # taken already: deliver them, untracked, rather than lose them
            log.warning("poll://%s/: could not remember %d request(s) handed out (%s)", subscription, len(taken), error)
            starts = []
        try:
            self._send(200, {"Requests": [json.loads(raw) for raw in taken]})
        except (SSL.Error, OSError) as error:
            # Not written whole, so the agent cannot have parsed any of it: safe to hand out again.
            self.close_connection = True
            if taken:
                self._acknowledge(subscription, starts)
                self._put_back(subscription, taken)
                log.info("poll://%s/ went away before taking %d request(s) (%r): queued again", subscription, len(taken), error)

    def _remember_handed_out(self, subscription: str, taken: list[bytes]) -> list[str]:
        """StartScript requests stay remembered until acknowledged (the others the caller may retry)."""
        starts = {}
        for raw in taken:
            envelope = json.loads(raw)
            if envelope.get("Method") == "StartScript" and isinstance(envelope.get("Id"), str):
                starts[envelope["Id"]] = raw
        if starts:
            now = time.time()
            pipe = self.server.redis.pipeline()
            pipe.zadd(unacked_key(subscription), {request_id: now for request_id in starts})
            pipe.hset(handed_key(subscription), mapping=starts)
            pipe.expire(unacked_key(subscription), DELIVERY_TTL)
            pipe.expire(handed_key(subscription), DELIVERY_TTL)
            pipe.execute()
        return list(starts)

    def _acknowledge(self, subscription: str, request_ids: list[str]) -> None:
        pipe = self.server.redis.pipeline()
        pipe.zrem(unacked_key(subscription), *request_ids)
        pipe.hdel(handed_key(subscription), *request_ids)
        pipe.execute()

    def _take(self, subscription: str, connection: int, wait: float, most: int = 100) -> list[bytes]:
        """Waits for work: woken by a notification, else looking every second only whether the agent
        is still there (a local peek, no Redis), and every FALLBACK_TICKS seconds at the queue in case
        a notification was missed. Presence and redelivery are the heartbeat thread's, for all polls."""
        keys = [requests_key(subscription), connection_key(subscription)]
        event = self.server.waiters.register(subscription)
        self.server.open_poll(subscription, +1)
        deadline = time.monotonic() + wait
        ticks = 0
        try:
            while True:
                if self._agent_gone():
                    return []
                if ticks % FALLBACK_TICKS == 0:
                    taken = self.server.take_if_newest(keys=keys, args=[connection, most])
                    if taken is None:
                        return []  # superseded by a newer poll of the same agent
                    taken = [raw for raw in taken if not _expired(raw) or self._still_awaited(raw)]
                    if taken:
                        return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.server.stopping.is_set():
                    return []
                if event.wait(min(remaining, 1.0)):
                    event.clear()
                    ticks = 0  # look at the queue now
                else:
                    ticks += 1
        finally:
            self.server.open_poll(subscription, -1)
            self.server.waiters.unregister(subscription, event)

    def _still_awaited(self, raw: bytes) -> bool:
        """A request put back after its queue timeout (not acknowledged) whose caller still waits."""
        request_id = json.loads(raw).get("Id", "")
        return bool(self.server.redis.exists(redelivered_key(request_id)) and self.server.redis.exists(owner_key(request_id)))

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
        _put_back(self.server.redis, subscription, taken)

    def _post(self):
        url = urlparse(self.path)
        subscription = self._authorise(url.path)
        if subscription is None:
            return
        if url.path.strip("/").split("/")[2:] != ["responses"]:
            return self._refuse(404, "Not found.")
        declared = self.headers.get("Content-Length")
        self.close_connection = True  # the body may be left unread: never read it as a next request
        if declared is None:
            return self._refuse(400, "Content-Length is required: the length of the JSON body in bytes.")
        if not declared.strip().isdigit():
            return self._refuse(400, f"Content-Length must be a whole number of bytes, not {declared[:40]!r}.")
        length = int(declared)
        if length > MAX_BODY:
            return self._refuse(413, f"Bodies are at most {MAX_BODY} bytes; Content-Length said {length}.")
        self.close_connection = False
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


def _put_back(redis_: redis.Redis, subscription: str, taken: list[bytes]) -> None:
    pipe = redis_.pipeline()
    pipe.lpush(requests_key(subscription), *reversed(taken))  # at the head, in their order
    pipe.publish(NOTIFY_CHANNEL, subscription)
    pipe.execute()


def _redeliver(redis_: redis.Redis, subscription: str, request_ids: list[bytes]) -> None:
    """StartScripts handed out ACK_SECONDS ago and still not acknowledged never reached the agent
    (or it died before starting them): put each back at the head of the queue, once. The ticket
    the server chose makes a duplicate harmless should the agent have started it after all."""
    for member in request_ids:
        if not redis_.zrem(unacked_key(subscription), member):
            continue  # acknowledged or claimed by another endpoint meanwhile
        raw = cast(bytes | None, redis_.hget(handed_key(subscription), member))
        redis_.hdel(handed_key(subscription), member)
        request_id = member.decode()
        if raw is None or not redis_.exists(owner_key(request_id)) or redis_.exists(response_key(request_id)):
            continue  # its caller gave up, or has its answer
        if redis_.set(redelivered_key(request_id), 1, nx=True, ex=DELIVERY_TTL):
            log.info("poll://%s/ did not acknowledge request %s: delivering it again", subscription, request_id)
            _put_back(redis_, subscription, [raw])


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
    """Build the endpoint with the server certificate and the database's polling workers; it sweeps
    its agents' presence into their health every two seconds."""
    from infrastructure.services.certificates import current_server_certificate, server_private_key_pem
    from infrastructure.services.liveness import PresenceSweeper

    certificate = current_server_certificate()
    return PollingEndpoint((host, port), certificate_pem=certificate.certificate_pem,
                           private_key_pem=server_private_key_pem(certificate), redis_url=redis_url,
                           subscription_for_thumbprint=ThumbprintDirectory(), sweep_liveness=PresenceSweeper())

