"""The built-in worker: the server itself runs the step in a child process, through the same script
service the agent uses (one per server process, so tickets live across calls)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from infrastructure.transports.envelope import EnvelopeTransport
from tentacle_agent.service import ScriptService


@lru_cache(maxsize=1)
def builtin_script_service() -> ScriptService:
    home = Path(settings.VAR_DIR) / "builtin-worker"
    home.mkdir(parents=True, exist_ok=True)
    return ScriptService(home)


class BuiltinTransport(EnvelopeTransport):
    def __init__(self, timeout: int = 60):  # noqa: D107 - no Worker row: the server is the worker
        self.worker = None
        self.name = "the built-in worker"
        self.timeout = timeout

    def exchange(self, envelope: dict, timeout: float) -> dict:
        return builtin_script_service().handle(envelope)
