"""Driving a script service through its typed contract, as the orchestrator does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from infrastructure.transports import ScriptService, new_ticket
from tentacle_agent.protocol import StartScriptCommand, is_finished


@dataclass
class Outcome:
    ticket: str
    exit_code: int | None
    lines: list = field(default_factory=list)
    status: dict = field(default_factory=dict)
    artifacts: list = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [line["Text"] for line in self.lines]

    def stream(self, name: str) -> list[str]:
        return [line["Text"] for line in self.lines if line["Stream"] == name]


def command(
    body: str, *, syntax: str = "Bash", variables=(), packages=(), timeout: int | None = None, ticket: str | None = None
) -> StartScriptCommand:
    return {
        "Ticket": ticket or new_ticket(),
        "ScriptBody": body,
        "Syntax": syntax,
        "Variables": list(variables),
        "Packages": list(packages),
        "IsolationMutex": None,
        "TimeoutSeconds": timeout,
    }


def follow(service: ScriptService, ticket: str, *, deadline: float = 120) -> tuple[list, dict]:
    lines: list = []
    after = -1
    give_up = time.monotonic() + deadline
    while True:
        status = service.get_status(ticket, after, 5)
        for line in status.get("Logs") or []:
            lines.append(line)
            after = max(after, line["Sequence"])
        if is_finished(status):
            return lines, dict(status)
        assert time.monotonic() < give_up, f"the script {ticket} did not finish within {deadline}s"


def execute(service: ScriptService, body: str, **options) -> Outcome:
    """Start, follow to the end, complete (artifacts collected, work folder gone)."""
    deadline = options.pop("deadline", 120)
    ticket = service.start_script(command(body, **options))
    lines, status = follow(service, ticket, deadline=deadline)
    artifacts = service.complete_script(ticket)["Artifacts"]
    return Outcome(ticket, status.get("ExitCode"), lines, status, list(artifacts))
