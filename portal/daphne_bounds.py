"""daphne's side of bounded request bodies (the rules are in portal/request_limits.py).

Left alone, daphne (through Twisted) receives a whole body before the application sees the request, parses a
form or multipart body in memory, and then queues every chunk of it for the application at once: a 300 MB
upload or an anonymous 1 GB POST sat in daphne's memory whatever the application answered. `install()`
changes three things, from `portal/asgi.py`, so that they hold however daphne is started:

1. The limit is checked when the headers are in: a declared length over it is answered 413 at once and the
   connection closed after a short drain (so the client can read the answer); a chunked body is counted and
   cut the same way. Twisted already answers 400 to a malformed, negative or conflicting length.
2. Twisted's own form parsing is off (daphne never uses it); the body stays in Twisted's spooled file.
3. The body is handed to the application one chunk per `receive()`, read from that file only when asked.
"""

from __future__ import annotations

import asyncio
from functools import partial

from daphne import http_protocol, server
from twisted.web import http

from portal.request_limits import body_limit, refusal, too_large_message

CHUNK = 64 * 1024
DRAIN_SECONDS = 5  # after a refusal, read and drop what the client still sends, then close: it sees the answer


class _Discard:
    closed = False

    def write(self, data):
        pass

    def close(self):
        self.closed = True


class _LazyBody:
    """What daphne's own body loop sees (nothing); the real file stays with the request for the queue."""

    def __init__(self, real):
        self.real = real

    @property
    def closed(self):
        return self.real.closed

    def seek(self, *args):
        return 0

    def read(self, *args):
        return b""

    def close(self):
        self.real.close()


class BoundedWebRequest(http_protocol.WebRequest):
    lazy_body = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False
        self._limit = None
        self._received = 0
        self._refused = False

    def gotLength(self, length):
        raw_path = (getattr(self.channel, "_path", b"") or b"").split(b"?", 1)[0]
        self._bounded_path = raw_path.decode("ascii", "replace")
        self._limit = body_limit(self._bounded_path)
        if length is not None and length > self._limit:
            self.content = _Discard()
            self._refuse(413, too_large_message(self._limit))
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self.content.close()
            self.content = _Discard()
            self._refuse(413, too_large_message(self._limit))
            return
        super().handleContentChunk(data)

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the answer
        headers, body = refusal(status, message, self._bounded_path)
        head = b"HTTP/1.1 %d %s\r\n" % (status, b"Content Too Large" if status == 413 else b"Bad Request")
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.channel.transport.write(head + b"\r\n" + body)
        from twisted.internet import reactor  # daphne installs its asyncio reactor first

        transport = self.channel.transport
        self._drain_deadline = reactor.callLater(DRAIN_SECONDS, transport.abortConnection)

    def requestReceived(self, command, path, version):
        if self._refused:
            if self._drain_deadline.active():
                self._drain_deadline.cancel()
            self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    def process(self):
        if self.content is not None and not self.content.closed:
            self.content.seek(0, 0)
            self.lazy_body = self.content
            self.content = _LazyBody(self.content)
        return super().process()


class _RequestQueue(asyncio.Queue):
    """An HTTP request's `receive`: body chunks are read from the spooled file one at a time, when asked."""

    def __init__(self, body):
        super().__init__()
        self._body = body

    def put_nowait(self, message):
        if message.get("type") == "http.request" and self._body is not None:
            return  # daphne's (empty) body message: the body comes from the file instead
        super().put_nowait(message)

    async def get(self):
        if self._body is not None:
            try:
                chunk = self._body.read(CHUNK)
            except ValueError:  # the request was closed under us
                chunk = b""
            if len(chunk) < CHUNK:
                self._body = None
            return {"type": "http.request", "body": chunk, "more_body": self._body is not None}
        return await super().get()


def _create_application(self, protocol, scope):
    """daphne's Server.create_application, with a lazy body queue for HTTP requests."""
    body = getattr(protocol, "lazy_body", None)
    if body is None:
        return _original_create_application(self, protocol, scope)
    assert "application_instance" not in self.connections[protocol]
    input_queue = _RequestQueue(body)
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = self.application(
        scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
    )
    if protocol not in self.connections:
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance, loop=asyncio.get_event_loop()
    )
    return input_queue


_original_create_application = server.Server.create_application


MALFORMED = "The request is malformed: its Content-Length, Transfer-Encoding or a header line could not be understood."


def _respond_to_bad_request(channel) -> None:
    """Twisted's answer to bad framing (a negative, malformed or conflicting length), in the shape of every other
    refusal: JSON under /api."""
    path = (getattr(channel, "_path", b"") or b"").split(b"?", 1)[0].decode("ascii", "replace")
    headers, body = refusal(400, MALFORMED, path)
    head = b"HTTP/1.1 400 Bad Request\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    channel.transport.write(head + b"\r\n" + body)
    channel.loseConnection()


def install() -> None:
    """Make daphne's HTTP factory build bounded requests (it looks `WebRequest` up when each connection opens)."""
    http_protocol.WebRequest = BoundedWebRequest
    server.Server.create_application = _create_application
    http.HTTPChannel._respondToBadRequestAndDisconnect = _respond_to_bad_request
