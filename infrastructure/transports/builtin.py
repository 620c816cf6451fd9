"""The built-in worker: the server itself runs the step in a child process, through the same script
service the agent uses (one per server process, so tickets live across calls)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings

from infrastructure.transports import RetryCallback
from infrastructure.transports.envelope import EnvelopeTransport
from tentacle_agent.service import ScriptService


# Scripts on the server see only these: never DATABASE_URL, REDIS_URL, SECRET_KEY or the master key.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")


def builtin_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _INHERITED if name in os.environ}


_service: ScriptService | None = None
_service_lock = threading.Lock()


def builtin_script_service() -> ScriptService:
    """One per server process; a lock, because concurrent tasks ask at once and tickets live in it."""
    global _service
    with _service_lock:
        if _service is None:
            home = Path(settings.VAR_DIR) / "builtin-worker"
            home.mkdir(parents=True, exist_ok=True)
            _service = ScriptService(home, environment=builtin_environment())
        return _service


class BuiltinTransport(EnvelopeTransport):
    """No network between the server and itself: nothing to retry."""

    def __init__(self, timeout: int = 60, *, on_retry: RetryCallback | None = None):  # noqa: D107 - no Worker row
        self.worker = None
        self.name = "the built-in worker"
        self.timeout = timeout
        self.retry_count, self.retry_wait = 0, 0
        self.on_retry = on_retry

    def exchange(self, envelope: dict, timeout: float) -> dict:
        return builtin_script_service().handle(envelope)
