"""Bounded request bodies, enforced before authentication or routing ever see a request.

A declared `Content-Length` over the limit is refused at once, unread; a malformed, negative or conflicting
length is a 400; a body without a length (chunked) is counted as it arrives and cut at the limit. The limit
is small everywhere but the package upload paths. Under daphne the same rules run a layer lower, in
Twisted, before daphne spools the body (portal/daphne_bounds.py); this middleware is the rule for any other
ASGI server and the backstop under daphne.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from django.conf import settings


class BodyTooLarge(Exception):
    """The body grew past its limit while being read."""


@lru_cache(maxsize=1)
def _upload_paths() -> tuple[re.Pattern, ...]:
    return tuple(re.compile(pattern) for pattern in settings.REEF_PACKAGE_UPLOAD_PATHS)


def body_limit(path: str) -> int:
    """Bytes a request body to `path` may have."""
    if any(pattern.match(path) for pattern in _upload_paths()):
        return settings.REEF_PACKAGE_MAX_BYTES
    return settings.REEF_REQUEST_MAX_BYTES


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size:,} bytes"


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {size_text(limit)} ({limit} bytes)."


def refusal(status: int, message: str, path: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a refusal: JSON in Octopus's error shape under /api, plain text elsewhere."""
    if path == "/api" or path.startswith("/api/"):
        body = json.dumps({"ErrorMessage": message, "Errors": [message]}).encode()
        content_type = b"application/json"
    else:
        body = (message + "\n").encode()
        content_type = b"text/plain; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    return headers, body


def length_problem(content_lengths: list[bytes], chunked: bool) -> str | None:
    """Why these framing headers are refused, or None. RFC 9112 6.3: conflicting lengths are an error."""
    if not content_lengths:
        return None
    if chunked:
        return "A request may not carry both Content-Length and Transfer-Encoding."
    if len(set(content_lengths)) > 1:
        return "The request carries conflicting Content-Length headers."
    if not content_lengths[0].isdigit():
        return "Content-Length must be a whole number of bytes, zero or more."
    return None


class BoundedBodyMiddleware:
    """ASGI middleware around the Django application (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        limit = body_limit(path)
        lengths = [value.strip() for name, value in scope["headers"] if name.lower() == b"content-length"]
        chunked = any(name.lower() == b"transfer-encoding" for name, _ in scope["headers"])
        if problem := length_problem(lengths, chunked):
            return await self._refuse(send, 400, problem, path)
        if lengths and int(lengths[0]) > limit:
            return await self._refuse(send, 413, too_large_message(limit), path)

        received = 0
        started = False

        async def bounded_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, 413, too_large_message(limit), path)

    @staticmethod
    async def _refuse(send, status: int, message: str, path: str) -> None:
        headers, body = refusal(status, message, path)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
