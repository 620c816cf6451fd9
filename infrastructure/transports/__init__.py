"""How the server talks to a worker: one contract (the script service, DESIGN.md), one transport per
communication style. The orchestrator, health checks and the Script Console only ever see
`ScriptService` and its typed methods; message names live in the envelope layer (envelope.py)."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable

from infrastructure.models import Worker
from tentacle_agent.protocol import (
    CollectedArtifact,
    CompleteResult,
    HealthResult,
    LogLine,
    ScriptStatus,
    StartScriptCommand,
    is_finished,
)

RetryCallback = Callable[[str], None]


class TransportError(Exception):
    """The worker could not be reached or answered nonsense. The message names the worker and the reason.
    `retryable`: whether trying again could help (a refused certificate or credentials never will)."""

    retryable = True

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class WorkerUnreachable(TransportError):
    """No connection could be made (after the machine policy's retries): nothing reached the worker, so
    nothing was started there. Selection may re-plan the step onto another worker of the pool."""


class TrustError(TransportError):
    """The worker presented a certificate or host key other than the pinned one. Never retried."""

    retryable = False


class ScriptService(ABC):
    """The script service contract: one method per message (docs/agent-protocol.md)."""

    name: str

    @abstractmethod
    def health(self) -> HealthResult:
        """Agent version, OS, shells and tools on PATH."""

    @abstractmethod
    def start_script(self, command: StartScriptCommand) -> str:
        """Start a script; returns its ticket. `command["Ticket"]` is chosen by the caller: sending the
        same command again (after a lost answer) returns the same ticket and never starts it twice."""

    @abstractmethod
    def get_status(self, ticket: str, after_sequence: int = -1, wait: float = 0) -> ScriptStatus:
        """State, exit code and the lines numbered after `after_sequence`; waits up to `wait` seconds
        for a new line or the end."""

    @abstractmethod
    def cancel_script(self, ticket: str) -> ScriptStatus:
        """Kill the script's whole process tree; it ends Complete with the cancel recorded."""

    @abstractmethod
    def complete_script(self, ticket: str) -> CompleteResult:
        """Collect the artifacts and delete the work folder (cancelling a script still running)."""

    @abstractmethod
    def has_package(self, sha256: str) -> bool:
        """Whether the worker's package cache holds this package."""

    @abstractmethod
    def upload_package(self, sha256: str, file_name: str, data: bytes) -> None:
        """Put a package in the worker's cache (refused if its bytes do not hash to `sha256`)."""

    # Built from the messages above, for health check scripts, tests and benchmarks.

    def run_script(self, body: str, syntax: str = "Bash", timeout: float = 300) -> tuple[int | None, list[LogLine]]:
        """Start a script and follow it to the end: (exit code, log lines). Long-polls, no busy waiting;
        the work folder is cleaned however it ends."""
        command: StartScriptCommand = {
            "Ticket": new_ticket(),
            "ScriptBody": body,
            "Syntax": syntax,
            "Variables": [],
            "Packages": [],
            "IsolationMutex": None,
            "TimeoutSeconds": int(timeout),
        }
        ticket = self.start_script(command)
        lines: list[LogLine] = []
        after = -1
        deadline = time.monotonic() + timeout + 30
        reachable = True
        try:
            while True:
                status = self.get_status(ticket, after, 10)
                for line in status.get("Logs") or []:
                    lines.append(line)
                    after = max(after, line["Sequence"])
                if is_finished(status):
                    return status.get("ExitCode"), lines
                if time.monotonic() > deadline:
                    self.cancel_script(ticket)
                    raise TransportError(
                        f"The script on {self.name} did not finish within {timeout:.0f}s and was cancelled."
                    )
        except TransportError:
            reachable = False
            raise
        finally:
            if reachable:
                self.complete_script(ticket)


def new_ticket() -> str:
    """Tickets are chosen by the server, so a start that is sent twice is recognised as one."""
    return uuid.uuid4().hex


def transport_for(worker: Worker, *, on_retry: RetryCallback | None = None) -> ScriptService:
    """`on_retry(message)` hears of each retry (one line: the attempt and the reason), e.g. into a task log."""
    style = worker.communication_style
    if style == Worker.CommunicationStyle.SSH:
        from infrastructure.transports.ssh import SshTransport  # the transports import this package

        return SshTransport(worker, on_retry=on_retry)
    if style == Worker.CommunicationStyle.LISTENING:
        from infrastructure.transports.listening import ListeningTransport  # the transports import this package

        return ListeningTransport(worker, on_retry=on_retry)
    if style == Worker.CommunicationStyle.POLLING:
        from infrastructure.transports.polling import PollingTransport  # the transports import this package

        return PollingTransport(worker, on_retry=on_retry)
    raise TransportError(f"{worker.name} has an unknown communication style {style!r}.", retryable=False)


__all__ = [
    "CollectedArtifact",
    "CompleteResult",
    "HealthResult",
    "LogLine",
    "RetryCallback",
    "ScriptService",
    "ScriptStatus",
    "StartScriptCommand",
    "TransportError",
    "TrustError",
    "WorkerUnreachable",
    "new_ticket",
    "transport_for",
]
