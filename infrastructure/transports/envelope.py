"""What listening and polling transports share: the script service over request/response envelopes."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
import uuid

from infrastructure.models import Worker
from infrastructure.transports import TransportError


def has_more(status: dict) -> bool:
    """GetStatus pages its lines: a Complete script may still have lines to fetch (agents before
    HasMore existed page at 5,000 lines)."""
    return bool(status.get("HasMore", len(status.get("Logs") or []) >= 1000))


class EnvelopeTransport(ABC):
    """Subclasses implement `exchange(envelope, timeout) -> envelope`."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.name = worker.name
        self.timeout = worker.machine_policy.connect_timeout

    @abstractmethod
    def exchange(self, envelope: dict, timeout: float) -> dict:
        """Send one request envelope to the worker and return its response envelope."""

    def call(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        envelope = {"Id": uuid.uuid4().hex, "Method": method, "Params": params or {}}
        answer = self.exchange(envelope, timeout if timeout is not None else self.timeout)
        if not isinstance(answer, dict) or answer.get("Id") != envelope["Id"]:
            raise TransportError(f"{self.name} answered {method} with something that is not its answer.")
        if "Error" in answer:
            error = answer["Error"] or {}
            raise TransportError(f"{self.name} refused {method}: {error.get('Message', 'no reason given')}")
        return answer.get("Result") or {}

    def run_script(self, body: str, syntax: str = "Bash", timeout: float = 300) -> tuple[int | None, list[dict]]:
        """Start a script and follow it to the end: (exit code, log lines). Long-polls, no busy waiting."""
        ticket = self.call("StartScript", {"ScriptBody": body, "Syntax": syntax, "Variables": [], "Packages": [],
                                           "IsolationMutex": None, "TimeoutSeconds": int(timeout)})["Ticket"]
        lines: list[dict] = []
        after = -1
        deadline = time.monotonic() + timeout + self.timeout
        reachable = True
        try:
            while True:
                status = self.call("GetStatus", {"Ticket": ticket, "AfterSequence": after, "WaitSeconds": 10},
                                   timeout=self.timeout + 15)
                for line in status.get("Logs") or []:
                    lines.append(line)
                    after = max(after, line.get("Sequence", after))
                if status.get("State") == "Complete" and not has_more(status):
                    return status.get("ExitCode"), lines
                if time.monotonic() > deadline:
                    self.call("CancelScript", {"Ticket": ticket})
                    raise TransportError(f"The script on {self.name} did not finish within {timeout:.0f}s and was cancelled.")
        except TransportError:
            reachable = False
            raise
        finally:
            if reachable:
                self.call("CompleteScript", {"Ticket": ticket})

    def health(self, script: str = "", script_timeout: float = 300) -> dict:
        capabilities = self.call("Health")
        capabilities.setdefault("Transport", type(self).__name__.removesuffix("Transport").lower())
        result = {"Capabilities": capabilities, "ScriptExitCode": None, "ScriptOutput": ""}
        if script.strip():
            code, lines = self.run_script(script, "Bash", script_timeout)
            output = []
            for line in lines:
                if line.get("Category") == "Warning":
                    output += ["##octopus[stdout-warning]", line.get("Text", ""), "##octopus[stdout-default]"]
                else:
                    output.append(line.get("Text", ""))
            result.update(ScriptExitCode=code, ScriptOutput="\n".join(output))
        return result
