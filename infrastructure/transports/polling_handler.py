"""One polling agent's requests: `GET /poll/<subscription>` (a long poll that takes queued requests) and
`POST /poll/<subscription>/responses` (its answers), authorised by the certificate's thumbprint."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import redis
from OpenSSL import SSL

from infrastructure.transports.polling import (
    PRESENCE_TTL,
    connection_key,
    handed_key,
    owner_key,
    presence_key,
    redelivered_key,
    requests_key,
    response_key,
    unacked_key,
)
from infrastructure.transports.polling_delivery import DELIVERY_TTL, expired, put_back
from infrastructure.transports.polling_sockets import TlsSocketIO, TlsWriter

if TYPE_CHECKING:
    from infrastructure.transports.polling_endpoint import PollingEndpoint

log = logging.getLogger("infrastructure.transports.polling_endpoint")  # one logger for the whole endpoint

MAX_BODY = 64 * 1024 * 1024
MAX_WAIT = 60
CONNECTION_TTL = 3600  # far longer than any long poll
FALLBACK_TICKS = 5  # seconds between looks at the queue of a poll that was not notified
_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")


class PollingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PollingEndpoint

    def __init__(self, request, client_address, server, *, thumbprint: str, tcp: socket.socket):
        self.thumbprint, self.tcp = thumbprint, tcp
        super().__init__(request, client_address, server)

    def setup(self):
        self.rfile = io.BufferedReader(TlsSocketIO(self.request), 65536)
        self.wfile = TlsWriter(self.request)  # type: ignore[assignment]

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
            log.warning(
                "refused polling client %s for poll://%s/: certificate thumbprint %s %s",
                self.client_address[0],
                subscription,
                self.thumbprint or "(none)",
                "is not a registered polling worker" if allowed is None else f"belongs to poll://{allowed}/",
            )
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
                log.info(
                    "poll://%s/ went away before taking %d request(s) (%r): queued again",
                    subscription,
                    len(taken),
                    error,
                )

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
                    taken = [raw for raw in taken if not expired(raw) or self._still_awaited(raw)]
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
        return bool(
            self.server.redis.exists(redelivered_key(request_id)) and self.server.redis.exists(owner_key(request_id))
        )

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
        put_back(self.server.redis, subscription, taken)

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
