"""The envelope layer: the script service's typed methods as request/response envelopes over one
primitive, `exchange(envelope, timeout)`, which listening, polling, SSH and the built-in worker implement.

Retries (STYLE 26, Octopus's machine policy): a failed exchange is tried again up to the policy's
`ConnectionRetryCountLimit` times, `ConnectionRetrySleepInterval` apart, each retry one line through
`on_retry`. Every message may be sent twice safely: StartScript carries the server's ticket, GetStatus
the same AfterSequence, uploads are named by their hash. A trust failure is never retried.
"""

from __future__ import annotations

import base64
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar, cast

from infrastructure.transports import RetryCallback, ScriptService, TransportError, WorkerUnreachable
from tentacle_agent import protocol
from tentacle_agent.protocol import CompleteResult, HealthResult, ScriptStatus, StartScriptCommand

T = TypeVar("T")
has_more = protocol.has_more  # kept for callers that imported it from here

# GetStatus waits this long for a new line at most; the call's timeout allows for it.
STATUS_WAIT_LIMIT = 30


class EnvelopeTransport(ScriptService):
    """Subclasses implement `exchange(envelope, timeout) -> envelope`. It raises WorkerUnreachable when
    nothing reached the worker, TrustError on a pinning mismatch, TransportError otherwise."""

    def __init__(self, worker: Any, *, on_retry: RetryCallback | None = None):
        self.worker = worker
        self.name: str = worker.name
        policy = worker.machine_policy
        self.timeout: float = policy.connect_timeout
        self.retry_count: int = policy.retry_count
        self.retry_wait: float = policy.retry_wait
        self.on_retry = on_retry

    @abstractmethod
    def exchange(self, envelope: dict, timeout: float) -> dict:
        """Send one request envelope to the worker and return its response envelope."""

    def should_retry(self, error: TransportError, elapsed: float) -> bool:
        """`elapsed`: how long the failed attempt took."""
        return error.retryable

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """One message, retried as the machine policy says."""

        def attempt() -> tuple[dict, dict]:
            # A new envelope Id each attempt: the polling endpoint delivers (and forgets) by Id. What makes a
            # repeated StartScript harmless is its ticket, not the envelope.
            envelope = {"Id": uuid.uuid4().hex, "Method": method, "Params": params or {}}
            return envelope, self.exchange(envelope, timeout if timeout is not None else self.timeout)

        envelope, answer = self.with_retries(method, attempt)
        if not isinstance(answer, dict) or answer.get("Id") != envelope["Id"]:
            raise TransportError(f"{self.name} answered {method} with something that is not its answer.")
        if "Error" in answer:
            error = answer["Error"] or {}
            raise TransportError(
                f"{self.name} refused {method}: {error.get('Message', 'no reason given')}", retryable=False
            )
        return answer.get("Result") or {}

    def with_retries(self, what: str, action: Callable[[], T]) -> T:
        """`action` tried up to 1 + ConnectionRetryCountLimit times, ConnectionRetrySleepInterval apart.
        Raises WorkerUnreachable when no attempt reached the worker, TrustError at once on a pinning
        mismatch, TransportError otherwise."""
        attempts = self.retry_count + 1
        for attempt in range(1, attempts + 1):
            began = time.monotonic()
            try:
                return action()
            except TransportError as error:
                if attempt == attempts or not self.should_retry(error, time.monotonic() - began):
                    if isinstance(error, WorkerUnreachable) and attempt > 1:
                        raise WorkerUnreachable(f"{error} (tried {attempt} times)") from None
                    raise
                self.retrying(
                    f"{self.name}: {what} attempt {attempt} of {attempts} failed ({error}); "
                    f"retrying in {self.retry_wait:g}s."
                )
                time.sleep(self.retry_wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def retrying(self, message: str) -> None:
        if self.on_retry is not None:
            self.on_retry(message)

    # The contract ---------------------------------------------------------------------------------

    def health(self) -> HealthResult:
        capabilities = cast(HealthResult, self.call(protocol.HEALTH))
        capabilities.setdefault("Transport", type(self).__name__.removesuffix("Transport").lower())
        return capabilities

    def start_script(self, command: StartScriptCommand) -> str:
        result = self.call(protocol.START_SCRIPT, dict(command))
        ticket = result.get("Ticket")
        if not isinstance(ticket, str):
            raise TransportError(f"{self.name} answered StartScript without a ticket.")
        return ticket

    def get_status(self, ticket: str, after_sequence: int = -1, wait: float = 0) -> ScriptStatus:
        wait = max(0.0, min(float(wait), STATUS_WAIT_LIMIT))
        return cast(
            ScriptStatus,
            self.call(
                protocol.GET_STATUS,
                {"Ticket": ticket, "AfterSequence": after_sequence, "WaitSeconds": wait},
                timeout=self.timeout + wait + 10,
            ),
        )

    def cancel_script(self, ticket: str) -> ScriptStatus:
        return cast(ScriptStatus, self.call(protocol.CANCEL_SCRIPT, {"Ticket": ticket}, timeout=self.timeout + 10))

    def complete_script(self, ticket: str) -> CompleteResult:
        result = self.call(protocol.COMPLETE_SCRIPT, {"Ticket": ticket}, timeout=self.timeout + 30)
        return {"Artifacts": list(result.get("Artifacts") or [])}

    def has_package(self, sha256: str) -> bool:
        return bool(self.call(protocol.HAS_PACKAGE, {"Sha256": sha256}).get("Present"))

    def upload_package(self, sha256: str, file_name: str, data: bytes) -> None:
        self.call(
            protocol.UPLOAD_PACKAGE,
            {"Sha256": sha256, "FileName": file_name, "ContentBase64": base64.b64encode(data).decode()},
            timeout=max(600.0, self.timeout),
        )
