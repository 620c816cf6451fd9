"""The script service's messages, typed: one module both sides import (the server's transports and the
agent), standard library only, so the wire shapes live in one place (docs/agent-protocol.md).

Names are PascalCase because they are the wire names. Every request travels in an envelope
`{"Id", "Method", "Params"}` and every answer in `{"Id", "Result"}` or `{"Id", "Error"}`.
"""

from __future__ import annotations

from typing import Any, TypedDict

# Method names: the only place they are spelled, apart from the agent's dispatcher.
HEALTH = "Health"
START_SCRIPT = "StartScript"
GET_STATUS = "GetStatus"
CANCEL_SCRIPT = "CancelScript"
COMPLETE_SCRIPT = "CompleteScript"
HAS_PACKAGE = "HasPackage"
UPLOAD_PACKAGE = "UploadPackage"
METHODS = (HEALTH, START_SCRIPT, GET_STATUS, CANCEL_SCRIPT, COMPLETE_SCRIPT, HAS_PACKAGE, UPLOAD_PACKAGE)

# Script states.
PENDING, RUNNING, COMPLETE = "Pending", "Running", "Complete"
SYNTAXES = ("Bash", "Python", "PowerShell")


class ScriptVariable(TypedDict):
    Name: str
    Value: str
    IsSensitive: bool


class PackageReference(TypedDict):
    PackageId: str
    Version: str
    Sha256: str


class _StartScriptRequired(TypedDict):
    ScriptBody: str
    Syntax: str


class StartScriptCommand(_StartScriptRequired, total=False):
    """`Ticket`: chosen by the server (`uuid4().hex`); a repeat with the same ticket answers that
    ticket again and never starts the script twice, so a retry after a lost answer is safe."""

    Ticket: str
    Variables: list[ScriptVariable]
    Packages: list[PackageReference]
    IsolationMutex: str | None
    TimeoutSeconds: int | None
    TaskId: str | None


class StartScriptResult(TypedDict):
    Ticket: str


class GetStatusRequest(TypedDict):
    Ticket: str
    AfterSequence: int
    WaitSeconds: float


class TicketRequest(TypedDict):
    Ticket: str


class LogLine(TypedDict):
    Sequence: int
    Time: str
    Stream: str  # stdout | stderr
    Category: str  # Verbose | Info | Highlight | Wait | Warning | Error | Fatal
    Text: str


class ArtifactReference(TypedDict, total=False):
    Name: str
    Path: str
    Length: int


class _ScriptStatusRequired(TypedDict):
    Ticket: str
    State: str
    ExitCode: int | None
    Logs: list[LogLine]


class ScriptStatus(_ScriptStatusRequired, total=False):
    """The lines numbered after the asked-for sequence. `HasMore`: more lines wait after these, so a
    Complete script is done only when HasMore is false."""

    NextSequence: int
    HasMore: bool
    OutputVariables: list[ScriptVariable]
    Artifacts: list[ArtifactReference]
    FailureMessage: str | None


class CollectedArtifact(TypedDict):
    Name: str
    Length: int
    ContentBase64: str


class CompleteResult(TypedDict):
    Artifacts: list[CollectedArtifact]


class HasPackageRequest(TypedDict):
    Sha256: str


class UploadPackageRequest(TypedDict):
    Sha256: str
    FileName: str
    ContentBase64: str


class PackagePresence(TypedDict):
    Present: bool


class HealthResult(TypedDict, total=False):
    AgentVersion: str | None
    OperatingSystem: str
    Architecture: str
    Hostname: str
    Shells: list[str]
    Tools: dict[str, str]
    PythonVersion: str
    ProcessId: int
    Executable: str
    Kernel: str  # SSH workers: what `uname -r` and bash report
    ShellVersion: str
    Transport: str  # builtin | listening | polling | ssh (added by the server)


class ErrorBody(TypedDict):
    Kind: str  # BadRequest | NotFound | Internal
    Message: str


class Envelope(TypedDict, total=False):
    Id: str | None
    Method: str
    Params: dict[str, Any]
    Result: dict[str, Any]
    Error: ErrorBody


def has_more(status: ScriptStatus) -> bool:
    """GetStatus pages its lines: a Complete script may still have lines to fetch (agents before
    HasMore existed page at 5,000 lines, so a full page means ask again)."""
    if "HasMore" in status:
        return bool(status["HasMore"])
    return len(status.get("Logs") or []) >= 1000


def is_finished(status: ScriptStatus) -> bool:
    return status.get("State") == COMPLETE and not has_more(status)
