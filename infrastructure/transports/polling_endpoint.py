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

The endpoint accepts and hands connections to threads (here); polling_handler.py answers an agent's requests,
polling_delivery.py moves requests through Redis, polling_sockets.py adapts TLS connections for http.server.
"""

from __future__ import annotations

import hashlib
import logging
import selectors
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import redis
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import connection
from OpenSSL import SSL, crypto

from infrastructure.models import Worker
from infrastructure.services.certificates import current_server_certificate, server_private_key_pem
from infrastructure.services.liveness import PresenceSweeper
from infrastructure.transports.polling import PRESENCE_TTL, presence_key, unacked_key
from infrastructure.transports.polling_delivery import ACK_SECONDS, TAKE_IF_NEWEST, Waiters, redeliver
from infrastructure.transports.polling_handler import MAX_BODY, PollingHandler
from infrastructure.transports.polling_sockets import (
    IO_TIMEOUT,
    TlsSocketIO,
    close_quietly,
    closed_by_peer,
    rarely,
    set_timeouts,
)

__all__ = [
    "ACK_SECONDS",
    "MAX_BODY",
    "PollingEndpoint",
    "PollingHandler",
    "ThumbprintDirectory",
    "TlsSocketIO",
    "serve_polling_endpoint",
]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10  # seconds from accept to the first bytes, and for the TLS handshake
MAX_THREADS, MAX_QUEUED, MAX_PENDING = 512, 256, 1024  # defaults of the REEF_POLLING_MAX_* settings


class PollingEndpoint(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address,
        *,
        certificate_pem: str,
        private_key_pem: str,
        redis_url: str,
        subscription_for_thumbprint,
        sweep_liveness=None,
    ):
        """`subscription_for_thumbprint(thumbprint) -> subscription | None` decides who may connect;
        `sweep_liveness()`, if given, runs every few seconds in its own thread."""
        self.tls = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.tls.set_min_proto_version(SSL.TLS1_2_VERSION)
        self.tls.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, certificate_pem.encode()))
        self.tls.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, private_key_pem.encode()))
        # Accept any certificate in the handshake: it is pinned by thumbprint right after.
        self.tls.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
        # Bounded: requests wait for a connection instead of opening one per agent.
        self.redis = redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(
                redis_url, max_connections=64, timeout=10, socket_connect_timeout=5, health_check_interval=30
            )
        )
        self.take_if_newest = self.redis.register_script(TAKE_IF_NEWEST)
        self.waiters = Waiters(redis_url)
        self.subscription_for_thumbprint = subscription_for_thumbprint

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
        for subscription, overdue in zip(subscriptions, results[1::2], strict=True):
            if overdue:
                redeliver(self.redis, subscription, overdue)

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
            rarely(
                log.warning,
                "polling endpoint busy (%d connections waiting for a thread): closing new ones",
                self.max_queued,
            )
            close_quietly(request)
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
        set_timeouts(request, HANDSHAKE_TIMEOUT)
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
        set_timeouts(request, IO_TIMEOUT)  # headers and bodies: a stalled peer frees its thread
        certificate = connection.get_peer_certificate()
        thumbprint = (
            hashlib.sha1(certificate.to_cryptography().public_bytes(Encoding.DER)).hexdigest().upper()
            if certificate
            else ""
        )  # noqa: S324
        self.RequestHandlerClass(connection, client_address, self, thumbprint=thumbprint, tcp=request)  # type: ignore[call-arg, arg-type]

    def shutdown_request(self, request):
        try:
            if isinstance(request, SSL.Connection):
                request.shutdown()
        except (SSL.Error, OSError):
            pass
        super().shutdown_request(request.get_socket() if isinstance(request, SSL.Connection) else request)


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
            if closed_by_peer(sock):
                close_quietly(sock)  # it left before saying anything: no thread for that
            else:
                self.server.dispatch(sock, address)
        with self.lock:
            incoming, self.incoming = self.incoming, []
        now = time.monotonic()
        for sock, address in incoming:
            while len(self.pending) >= self.server.max_pending:
                oldest, (oldest_address, _) = self.pending.popitem(last=False)
                self.selector.unregister(oldest)
                rarely(
                    log.warning,
                    "polling endpoint: %d connections waiting for their first bytes; closing the oldest",
                    self.server.max_pending,
                )
                close_quietly(oldest)
            self.pending[sock] = (address, now)
            self.selector.register(sock, selectors.EVENT_READ)
        while self.pending:  # oldest first: stop at the first that may still wait
            sock, (address, accepted) = next(iter(self.pending.items()))
            if now - accepted < HANDSHAKE_TIMEOUT:
                break
            del self.pending[sock]
            self.selector.unregister(sock)
            close_quietly(sock)


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

        try:
            uri = (
                Worker.objects.filter(communication_style=Worker.CommunicationStyle.POLLING, thumbprint=thumbprint)
                .values_list("uri", flat=True)
                .first()
            )
        finally:
            connection.close()
        subscription = uri.removeprefix("poll://").rstrip("/") if uri else None
        with self.lock:
            if len(self.entries) > 100_000:
                self.entries.clear()
            self.entries[thumbprint] = (
                subscription,
                now + (self.KNOWN_SECONDS if subscription else self.UNKNOWN_SECONDS),
            )
        return subscription


def serve_polling_endpoint(host: str, port: int, redis_url: str) -> PollingEndpoint:
    """Build the endpoint with the server certificate and the database's polling workers; it sweeps
    its agents' presence into their health every two seconds."""
    certificate = current_server_certificate()
    return PollingEndpoint(
        (host, port),
        certificate_pem=certificate.certificate_pem,
        private_key_pem=server_private_key_pem(certificate),
        redis_url=redis_url,
        subscription_for_thumbprint=ThumbprintDirectory(),
        sweep_liveness=PresenceSweeper(),
    )
