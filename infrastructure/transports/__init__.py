"""How the server talks to a worker: one contract (the script service, DESIGN.md), one transport per
communication style. The orchestrator and health checks only ever see `ScriptService`."""

from __future__ import annotations

from typing import Protocol

from infrastructure.models import Worker


class TransportError(Exception):
    """The worker could not be reached or answered nonsense. The message names the worker and the reason."""


class WorkerUnreachable(TransportError):
    """No connection could be made (after the machine policy's retries): nothing reached the worker, so
    nothing was started there. Selection may re-plan the step onto another worker of the pool."""


class TrustError(TransportError):
    """The worker presented a certificate or host key other than the pinned one. Never retried."""


class ScriptService(Protocol):
    def health(self) -> dict: ...


def transport_for(worker: Worker) -> ScriptService:
    style = worker.communication_style
    if style == Worker.CommunicationStyle.SSH:
        from infrastructure.transports.ssh import SshTransport

        return SshTransport(worker)
    if style == Worker.CommunicationStyle.LISTENING:
        from infrastructure.transports.listening import ListeningTransport

        return ListeningTransport(worker)
    if style == Worker.CommunicationStyle.POLLING:
        from infrastructure.transports.polling import PollingTransport

        return PollingTransport(worker)
    raise TransportError(f"{worker.name} has an unknown communication style {style!r}.")
