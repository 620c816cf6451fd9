"""The script runner: the one place scripts run, whatever transport asked (DESIGN.md).

1. A ticket (chosen by the server, else here) gets a work folder with the script, its variables and a
   bootstrap (Octopus's `get_octopusvariable`, `set_octopusvariable`, `new_octopusartifact`,
   `fail_step`, `write_warning`…). A repeated StartScript with a known ticket starts nothing.
2. The child runs in its own session, marked by `REEF_SCRIPT_TICKET=<ticket>` in its environment; one
   reader takes stdout and stderr through a selector in bounded chunks, so lines are numbered in the
   order they were read, and a line longer than MAX_LINE is cut and the rest of it discarded.
3. Service messages (`##octopus[...]`) are taken out of the output and recorded; every other line is
   masked (sensitive values, and each line of a multi-line one) and numbered before anyone reads it.
4. `status()` long-polls on a Condition, so a reader hears of a new line or the end at once.
5. Cancel and timeout kill the process group and every process carrying the ticket's marker (`setsid`
   daemons included): SIGTERM, then SIGKILL after a grace period.
6. Nothing stays behind: secrets files go as soon as they are not needed, the work folder at
   CompleteScript, or after FORGET_AFTER_SECONDS when nobody collects it, or at the next start of an
   agent whose previous run died (a work folder is owned through a lock held while its script lives).

Memory is bounded per script: at most MAX_UNFETCHED_BYTES / MAX_UNFETCHED_LINES of lines nobody has
fetched yet, plus what one READ_CHUNK read holds (past that the runner stops reading the child until the caller catches up: the child
blocks on its full pipe, nothing is lost), plus the last KEEP_FETCHED_LINES lines already fetched
(kept so a GetStatus retried after a lost answer gets them again).
"""

from __future__ import annotations

import base64
import collections
import ctypes
import datetime
import fcntl
import json
import os
import pwd
import re
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

MASK = "********"
MAX_LINE = 64 * 1024  # bytes of one line kept; the rest of it is discarded up to its newline
READ_CHUNK = 64 * 1024
TRUNCATED = " …(line truncated)"
MAX_LINES_PER_STATUS = 5000
MAX_UNFETCHED_BYTES = 16 * 1024 * 1024
MAX_UNFETCHED_LINES = 50_000
KEEP_FETCHED_LINES = 10_000
MAX_ARTIFACT_BYTES = 100 * 1024 * 1024
KILL_GRACE_SECONDS = 3
DRAIN_SECONDS = 5  # after the script exits, how long its background children may keep the pipes open
FORGET_AFTER_SECONDS = 15 * 60
MARKER = "REEF_SCRIPT_TICKET"
TICKET = re.compile(r"^[0-9a-f]{16,64}$")
SECRET_FILES = ("variables.json", "bootstrap.sh")
PR_SET_CHILD_SUBREAPER = 36
_SERVICE_MESSAGE = re.compile(r"^##octopus\[([\w-]+)((?:\s+\w+='[^']*')*)\s*\]\s*$")
_ATTRIBUTE = re.compile(r"(\w+)='([^']*)'")

BASH_BOOTSTRAP = r"""
_b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
get_octopusvariable() { printf '%s' "${octopus_parameters[$1]}"; }
set_octopusvariable() {
  local sensitive=False
  case "${3:-}" in -sensitive|--sensitive|True|true) sensitive=True ;; esac
  echo "##octopus[setVariable name='$(_b64 "$1")' value='$(_b64 "$2")' sensitive='$(_b64 "$sensitive")']"
}
new_octopusartifact() {
  local length; length=$(wc -c < "$1" 2>/dev/null | tr -d ' '); length=${length:-0}
  echo "##octopus[createArtifact path='$(_b64 "$1")' name='$(_b64 "${2:-$(basename "$1")}")' length='$(_b64 "$length")']"
}
fail_step() { echo "##octopus[stepFailed message='$(_b64 "$1")']"; exit 1; }
update_progress() { echo "##octopus[progress percentage='$(_b64 "$1")' message='$(_b64 "${2:-}")']"; }
write_warning() { echo "##octopus[stdout-warning]"; echo "$*"; echo "##octopus[stdout-default]"; }
write_highlight() { echo "##octopus[stdout-highlight]"; echo "$*"; echo "##octopus[stdout-default]"; }
write_verbose() { echo "##octopus[stdout-verbose]"; echo "$*"; echo "##octopus[stdout-default]"; }
write_wait() { echo "##octopus[stdout-wait]"; echo "$*"; echo "##octopus[stdout-default]"; }
"""

PYTHON_MODULE = '''"""Octopus's script helpers for Python steps: preloaded into builtins (`from octopus import *` also works)."""
import base64, json, os, sys

__all__ = ["octopusvariables", "get_octopusvariable", "set_octopusvariable", "new_octopusartifact", "createartifact",
           "fail_step", "failstep", "update_progress", "updateprogress", "write_verbose", "printverbose",
           "write_highlight", "printhighlight", "write_wait", "printwait", "write_warning", "printwarning"]

_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, "variables.json"), encoding="utf-8") as _f:
    octopusvariables = {v["Name"]: v["Value"] for v in json.load(_f)}


def _b64(value):
    return base64.b64encode(str(value).encode()).decode()


def _say(line):
    sys.stdout.flush()
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


def get_octopusvariable(name):
    return octopusvariables.get(name, "")


def set_octopusvariable(name, value, sensitive=False):
    octopusvariables[name] = str(value)
    _say(f"##octopus[setVariable name='{_b64(name)}' value='{_b64(value)}' sensitive='{_b64(bool(sensitive))}']")


def new_octopusartifact(path, name=None):
    length = os.path.getsize(path) if os.path.isfile(path) else 0
    _say(f"##octopus[createArtifact path='{_b64(path)}' name='{_b64(name or os.path.basename(path))}' length='{_b64(length)}']")


def fail_step(message=None):
    _say(f"##octopus[stepFailed message='{_b64(message or '')}']")
    sys.exit(1)


def update_progress(percentage, message=None):
    _say(f"##octopus[progress percentage='{_b64(int(percentage))}' message='{_b64(message or '')}']")


def _with_category(category, message):
    _say(f"##octopus[stdout-{category}]")
    _say(str(message))
    _say("##octopus[stdout-default]")


def write_warning(message):
    _with_category("warning", message)


def write_highlight(message):
    _with_category("highlight", message)


def write_verbose(message):
    _with_category("verbose", message)


def write_wait(message):
    _with_category("wait", message)


# Calamari's own names for the same helpers.
createartifact, failstep, updateprogress = new_octopusartifact, fail_step, update_progress
printverbose, printhighlight, printwait, printwarning = write_verbose, write_highlight, write_wait, write_warning
'''

# Runs script.py as __main__ with the helpers in builtins, so scripts need no import (as on Octopus).
PYTHON_BOOTSTRAP = """import builtins, runpy, sys
import octopus
for _name in octopus.__all__:
    setattr(builtins, _name, getattr(octopus, _name))
sys.argv[0] = "script.py"
del _name
runpy.run_path("script.py", run_name="__main__")
"""

# PowerShell steps: Octopus's cmdlets (and the snake_case names as aliases), then the script, dot-sourced.
POWERSHELL_BOOTSTRAP = r"""
$OctopusParameters = @{}
foreach ($v in (Get-Content -Raw -Encoding UTF8 (Join-Path $PSScriptRoot 'variables.json') | ConvertFrom-Json)) {
  $OctopusParameters[$v.Name] = [string]$v.Value
}
function Convert-ToServiceMessageValue([string]$value) { [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($value)) }
function Write-OctopusServiceMessage([string]$line) { [Console]::Out.WriteLine($line); [Console]::Out.Flush() }
function Get-OctopusVariable([string]$name) { $OctopusParameters[$name] }
function Set-OctopusVariable([string]$name, [string]$value, [switch]$sensitive) {
  $OctopusParameters[$name] = $value
  $s = if ($sensitive) { 'True' } else { 'False' }
  Write-OctopusServiceMessage "##octopus[setVariable name='$(Convert-ToServiceMessageValue $name)' value='$(Convert-ToServiceMessageValue $value)' sensitive='$(Convert-ToServiceMessageValue $s)']"
}
function New-OctopusArtifact([string]$path, [string]$name) {
  if (-not $name) { $name = Split-Path -Leaf $path }
  $length = if (Test-Path -PathType Leaf $path) { (Get-Item $path).Length } else { 0 }
  Write-OctopusServiceMessage "##octopus[createArtifact path='$(Convert-ToServiceMessageValue $path)' name='$(Convert-ToServiceMessageValue $name)' length='$(Convert-ToServiceMessageValue $length)']"
}
function Fail-Step([string]$message) {
  Write-OctopusServiceMessage "##octopus[stepFailed message='$(Convert-ToServiceMessageValue $message)']"
  exit 1
}
function Update-Progress([int]$percentage, [string]$message) {
  Write-OctopusServiceMessage "##octopus[progress percentage='$(Convert-ToServiceMessageValue $percentage)' message='$(Convert-ToServiceMessageValue $message)']"
}
function Write-OctopusCategory([string]$category, $message) {
  Write-OctopusServiceMessage "##octopus[stdout-$category]"; Write-OctopusServiceMessage ([string]$message)
  Write-OctopusServiceMessage "##octopus[stdout-default]"
}
function Write-Highlight($message) { Write-OctopusCategory 'highlight' $message }
function Write-Verbose($message) { Write-OctopusCategory 'verbose' $message }
function Write-Wait($message) { Write-OctopusCategory 'wait' $message }
function Write-Warning($message) { Write-OctopusCategory 'warning' $message }
Set-Alias -Name get_octopusvariable -Value Get-OctopusVariable
Set-Alias -Name set_octopusvariable -Value Set-OctopusVariable
Set-Alias -Name new_octopusartifact -Value New-OctopusArtifact
Set-Alias -Name fail_step -Value Fail-Step
Set-Alias -Name update_progress -Value Update-Progress
Set-Alias -Name write_highlight -Value Write-Highlight
Set-Alias -Name write_verbose -Value Write-Verbose
Set-Alias -Name write_wait -Value Write-Wait
Set-Alias -Name write_warning -Value Write-Warning
Set-Location $PSScriptRoot
. (Join-Path $PSScriptRoot 'script.ps1')
"""


class RunnerError(Exception):
    """A request the runner cannot carry out; the message says why (it becomes a BadRequest)."""


class NotFound(RunnerError):
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value.encode(), validate=True).decode("utf-8", errors="replace")
    except ValueError:
        return ""


MIN_SECRET_LINE = 4


def bash_line_endings(body: str) -> str:
    """Browsers send a textarea's lines ending in CRLF; bash would read `id\r` as the command name."""
    return body.replace("\r\n", "\n")


def secret_forms(value: str) -> set[str]:
    """What to mask for one sensitive value: the value, and each non-blank line of a multi-line one
    (output is split into lines, so a multi-line secret only ever shows up line by line). Lines of
    fewer than MIN_SECRET_LINE visible characters (a JSON `}`, a PEM's `-----`) are no secret on their
    own, and masking them would blank every such line of the log."""
    forms = {value} if value else set()
    for line in value.splitlines():
        line = line.rstrip("\r")
        if len(line.strip()) >= MIN_SECRET_LINE:
            forms.add(line)
    return forms


def become_subreaper() -> bool:
    """Orphaned descendants of scripts become this process's children (Linux), so none escapes as a
    child of init; the runner reaps them. False where the platform has no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _proc_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def marked_processes(ticket: str) -> list[int]:
    """Live processes whose environment carries the ticket's marker (a zombie's environment reads empty)."""
    needle = f"{MARKER}={ticket}".encode()
    found = []
    for pid in _proc_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


class _Stream:
    """One pipe's partial line: at most MAX_LINE bytes are held; past that the line is cut."""

    def __init__(self, name: str):
        self.name = name
        self.buffer = bytearray()
        self.discarding = False


class Script:
    def __init__(self, ticket: str, request: dict, work: Path):
        self.ticket = ticket
        self.request = request
        self.work = work
        self.state = "Pending"
        self.exit_code: int | None = None
        self.failure_message: str | None = None
        self.lines: list[dict] = []
        self.first_sequence = 0  # the Sequence of lines[0]: fetched lines past KEEP_FETCHED_LINES are dropped
        self.next_sequence = 0
        self.fetched_through = -1  # the caller asked for lines after this one, so it has all up to it
        self.unfetched_bytes = 0
        self.output_variables: list[dict] = []
        self.artifacts: list[dict] = []
        self.condition = threading.Condition()
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.finished_at: float | None = None
        self.lock_file: int | None = None
        values: set[str] = set()
        for variable in request.get("Variables") or []:
            if variable.get("IsSensitive"):
                values |= secret_forms(str(variable.get("Value", "")))
        self.sensitive = sorted(values, key=len, reverse=True)
        self.category = {"stdout": "Info", "stderr": "Error"}

    def add_sensitive(self, value: str) -> None:
        self.sensitive = sorted(set(self.sensitive) | secret_forms(value), key=len, reverse=True)

    def mask(self, text: str) -> str:
        for value in self.sensitive:
            text = text.replace(value, MASK)
        return text

    def _line(self, stream: str, text: str, category: str | None, truncated: bool) -> dict:
        text = self.mask(text)
        if truncated or len(text) > MAX_LINE:
            # A secret cut by the end of what was kept would show its first characters: drop them.
            for value in self.sensitive:
                for size in range(min(len(value) - 1, len(text)), 0, -1):
                    if text.endswith(value[:size]):
                        text = text[:-size]
                        break
            text = text[:MAX_LINE] + TRUNCATED
        line = {"Sequence": self.next_sequence, "Time": _now(), "Stream": stream,
                "Category": category or self.category[stream], "Text": text}
        self.next_sequence += 1
        self.unfetched_bytes += len(text)
        return line

    def add_line(self, stream: str, text: str, category: str | None = None, truncated: bool = False) -> None:
        with self.condition:
            self.lines.append(self._line(stream, text, category, truncated))
            self.condition.notify_all()

    def add_lines(self, lines: list[tuple[str, str, str | None, bool]]) -> None:
        if not lines:
            return
        with self.condition:
            for stream, text, category, truncated in lines:
                self.lines.append(self._line(stream, text, category, truncated))
            self.condition.notify_all()

    def has_room(self) -> bool:
        return (self.unfetched_bytes < MAX_UNFETCHED_BYTES
                and self.next_sequence - 1 - self.fetched_through < MAX_UNFETCHED_LINES)

    def acknowledge(self, after: int) -> None:
        """The caller has every line up to `after`: they stop counting against the unfetched bound, and
        beyond the last KEEP_FETCHED_LINES they are forgotten. Call with the condition held."""
        after = min(after, self.next_sequence - 1)
        if after <= self.fetched_through:
            return
        start = max(self.fetched_through + 1, self.first_sequence) - self.first_sequence
        stop = after + 1 - self.first_sequence
        self.unfetched_bytes -= sum(len(line["Text"]) for line in self.lines[start:stop])
        self.fetched_through = after
        drop = min(len(self.lines) - KEEP_FETCHED_LINES, after + 1 - self.first_sequence)
        if drop > 0:
            del self.lines[:drop]
            self.first_sequence += drop
        self.condition.notify_all()

    def finish(self, exit_code: int | None, failure: str | None = None) -> None:
        with self.condition:
            self.exit_code = exit_code
            if failure and not self.failure_message:
                self.failure_message = failure
            self.state = "Complete"
            self.finished_at = time.monotonic()
            self.condition.notify_all()

    def snapshot(self, after: int) -> dict:
        start = max(0, after + 1, self.first_sequence)
        index = start - self.first_sequence
        logs = self.lines[index:index + MAX_LINES_PER_STATUS]
        return {"Ticket": self.ticket, "State": self.state, "ExitCode": self.exit_code, "Logs": logs,
                "NextSequence": start + len(logs), "HasMore": start + len(logs) < self.next_sequence,
                "OutputVariables": list(self.output_variables), "Artifacts": list(self.artifacts),
                "FailureMessage": self.failure_message}


class ScriptRunner:
    def __init__(self, work_root: Path, package_cache=None, environment: dict | None = None, *, run_as: str | None = None,
                 forget_after: float = FORGET_AFTER_SECONDS, subreaper: bool = False):
        """`environment`: what scripts see instead of this process's environment (the server's built-in
        worker passes a clean one, so scripts never see its database or broker credentials).
        `run_as`: an account scripts run as when this process is root (the built-in worker's own).
        `forget_after`: seconds a finished script waits for CompleteScript before it is cleaned up.
        `subreaper`: make this process the reaper of scripts' orphans (only in a process of its own:
        it reaps every zombie child that is not a script it started)."""
        self.environment = dict(environment) if environment is not None else None
        self.work_root = Path(work_root)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.package_cache = package_cache
        self.run_as = run_as if run_as and os.geteuid() == 0 else None
        if self.run_as:
            os.chmod(self.work_root, 0o711)  # the account may enter its own folder, never list the others
        self.forget_after = float(forget_after)
        self.scripts: dict[str, Script] = {}
        self.collected: collections.OrderedDict[str, str] = collections.OrderedDict()  # ticket -> why it is gone
        self.lock = threading.Lock()
        self.spawn_lock = threading.Lock()  # a child is never reaped between its fork and its Popen being known
        self.mutexes: dict[str, threading.Lock] = {}
        self.subreaper = subreaper and become_subreaper()
        self.stopped = threading.Event()
        self.sweeper: threading.Thread | None = None
        self.remove_leftovers()

    # Requests -------------------------------------------------------------------------------------

    def start(self, request: dict) -> str:
        syntax = request.get("Syntax", "Bash")
        if syntax not in ("Bash", "Python", "PowerShell"):
            raise RunnerError(f"Unknown script syntax {syntax!r}: Bash, Python or PowerShell.")
        if not isinstance(request.get("ScriptBody"), str):
            raise RunnerError("ScriptBody must be text.")
        if syntax == "PowerShell" and not shutil.which("pwsh"):
            raise RunnerError("This worker has no PowerShell (pwsh) on its PATH.")
        if syntax == "Bash" and not shutil.which("bash"):
            raise RunnerError("This worker has no bash on its PATH.")
        variables = request.get("Variables") or []
        if not isinstance(variables, list) or not all(isinstance(v, dict) and isinstance(v.get("Name"), str) for v in variables):
            raise RunnerError("Variables must be a list of {Name, Value, IsSensitive}.")
        ticket = request.get("Ticket")
        if ticket is None:
            ticket = uuid.uuid4().hex
        elif not isinstance(ticket, str) or not TICKET.match(ticket):
            raise RunnerError("Ticket must be 16 to 64 lowercase hexadecimal characters.")
        account = self._account()
        with self.lock:
            if ticket in self.scripts:
                return ticket  # a retry after a lost answer: the script started once, it is not started again
            if ticket in self.collected:
                raise RunnerError(f"Script {ticket} already ran on this agent and {self.collected[ticket]}.")
            work = self.work_root / ticket
            lock_file = self._claim(ticket)
            try:
                work.mkdir(mode=0o700)
            except OSError as error:
                self._release(ticket, lock_file)
                raise RunnerError(f"Cannot make the work folder of script {ticket}: {error.strerror or error}.") from None
            script = Script(ticket, request, work)
            script.lock_file = lock_file
            self.scripts[ticket] = script
            if self.sweeper is None:
                self.sweeper = threading.Thread(target=self._sweep, name="script-sweeper", daemon=True)
                self.sweeper.start()
        threading.Thread(target=self._run, args=(script, account), name=f"script-{ticket[:8]}", daemon=True).start()
        return ticket

    def status(self, ticket: str, after: int = -1, wait: float = 0) -> dict:
        script = self._get(ticket)
        wait = max(0.0, min(float(wait), 30.0))
        with script.condition:
            script.acknowledge(after)
            script.condition.wait_for(lambda: script.next_sequence > after + 1 or script.state == "Complete", timeout=wait)
            return script.snapshot(after)

    def cancel(self, ticket: str) -> dict:
        script = self._get(ticket)
        with script.condition:
            first, script.cancelled = not script.cancelled, True
        if first and script.state != "Complete":  # a repeated cancel says and kills nothing more
            script.add_line("stdout", "The script was cancelled.", "Warning")
            self._kill(script)
        with script.condition:
            return script.snapshot(script.next_sequence - 1)

    def complete(self, ticket: str) -> dict:
        script = self._get(ticket)
        if script.state != "Complete":
            self.cancel(ticket)
            with script.condition:
                script.condition.wait_for(lambda: script.state == "Complete", timeout=KILL_GRACE_SECONDS + DRAIN_SECONDS + 5)
        artifacts = []
        for artifact in script.artifacts:
            content = self._read_artifact(Path(artifact["Path"]))
            if content is not None:
                artifacts.append({"Name": artifact["Name"], "Length": len(content),
                                  "ContentBase64": base64.b64encode(content).decode()})
        self._forget(script, "was completed")
        return {"Artifacts": artifacts}

    def cancel_all(self) -> None:
        """The agent is stopping: cancel every script, and clean up what will never be collected."""
        self.stopped.set()
        for script in list(self.scripts.values()):
            try:
                self.cancel(script.ticket)
            except NotFound:
                continue
        for script in list(self.scripts.values()):
            with script.condition:
                script.condition.wait_for(lambda: script.state == "Complete", timeout=KILL_GRACE_SECONDS + 2)
            self._forget(script, "was cancelled when the agent stopped")

    def _get(self, ticket: str) -> Script:
        script = self.scripts.get(ticket) if isinstance(ticket, str) else None
        if script is None:
            why = self.collected.get(ticket) if isinstance(ticket, str) else None
            raise NotFound(f"No script with ticket {ticket!r} on this agent" + (f": it {why}." if why else "."))
        return script

    # Work folders ---------------------------------------------------------------------------------

    def _account(self) -> pwd.struct_passwd | None:
        if not self.run_as:
            return None
        try:
            return pwd.getpwnam(self.run_as)
        except KeyError:
            raise RunnerError(f"Scripts are to run as {self.run_as!r}, but there is no such account on this machine.") from None

    def _claim(self, ticket: str) -> int:
        """A lock file beside the work folder, held while its script lives here: a folder whose lock
        nobody holds was left by an agent that died. Locked before it gets its name, so no other
        runner ever sees it unlocked."""
        temporary = self.work_root / f".{ticket}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.link(temporary, self.work_root / f"{ticket}.lock")  # never replaces another runner's lock
        except FileExistsError:
            os.close(fd)
            raise RunnerError(f"Script {ticket} is being run by another runner on this machine.") from None
        finally:
            temporary.unlink()
        return fd

    def _release(self, ticket: str, fd: int | None) -> None:
        try:
            (self.work_root / f"{ticket}.lock").unlink()
        except OSError:
            pass
        if fd is not None:
            os.close(fd)

    def _forget(self, script: Script, why: str) -> None:
        with self.lock:
            if self.scripts.get(script.ticket) is not script:
                return
            del self.scripts[script.ticket]
            self.collected[script.ticket] = why
            while len(self.collected) > 10_000:
                self.collected.popitem(last=False)
        shutil.rmtree(script.work, ignore_errors=True)
        self._release(script.ticket, script.lock_file)
        script.lock_file = None

    def remove_leftovers(self) -> list[str]:
        """Remove work folders no live runner owns (their agent died before cleaning up)."""
        removed = []
        for entry in self.work_root.iterdir():
            if not entry.is_dir() or entry.is_symlink() or not TICKET.match(entry.name):
                continue
            lock_path = self.work_root / f"{entry.name}.lock"
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None  # a folder from an agent without locks
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue  # its runner is alive
            shutil.rmtree(entry, ignore_errors=True)
            self._release(entry.name, fd)
            removed.append(entry.name)
        return removed

    def _sweep(self) -> None:
        """Finished scripts nobody collected within `forget_after` are cleaned up; orphans are reaped."""
        interval = max(0.1, min(5.0, self.forget_after / 4))
        while not self.stopped.wait(interval):
            now = time.monotonic()
            for script in list(self.scripts.values()):
                if script.finished_at is not None and now - script.finished_at > self.forget_after:
                    self._forget(script, f"was not collected within {self.forget_after:g} seconds and was cleaned up")
            if self.subreaper:
                self._reap()

    def _reap(self) -> None:
        """Wait for zombie children that are not scripts' own processes (Popen waits for those)."""
        me = os.getpid()
        with self.spawn_lock:
            ours = {s.process.pid for s in list(self.scripts.values()) if s.process is not None and s.process.returncode is None}
            for pid in _proc_pids():
                if pid in ours:
                    continue
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if fields[0] == "Z" and int(fields[1]) == me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass

    def _read_artifact(self, path: Path) -> bytes | None:
        """The artifact's bytes, or None. Under `run_as` only a file that account owns is read, without
        following a final symbolic link: the agent never hands out a file the script could not read."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            account = pwd.getpwnam(self.run_as) if self.run_as else None
            if (not _is_regular(info.st_mode) or info.st_size > MAX_ARTIFACT_BYTES
                    or (account is not None and info.st_uid != account.pw_uid)):
                return None
            return f.read(MAX_ARTIFACT_BYTES + 1)[:MAX_ARTIFACT_BYTES]

    # Running --------------------------------------------------------------------------------------

    def _run(self, script: Script, account: pwd.struct_passwd | None) -> None:
        mutex_name = script.request.get("IsolationMutex")
        mutex = None
        if mutex_name:
            with self.lock:
                mutex = self.mutexes.setdefault(str(mutex_name), threading.Lock())
            if not mutex.acquire(blocking=False):
                script.add_line("stdout", f"Waiting for the script isolation mutex {mutex_name!r}…", "Wait")
                while not mutex.acquire(timeout=0.5):
                    if script.cancelled:
                        script.finish(None, "Cancelled while waiting for the isolation mutex.")
                        return
        try:
            if script.cancelled:
                script.finish(None, "Cancelled before it started.")
                return
            self._execute(script, account)
        except Exception as error:  # never leave a reader waiting on a script that died in the runner
            script.add_line("stderr", f"The agent could not run the script: {error}", "Fatal")
            script.finish(None, str(error))
        finally:
            for name in SECRET_FILES:  # values in clear never outlive the script
                try:
                    (script.work / name).unlink()
                except OSError:
                    pass
            if mutex is not None:
                mutex.release()

    def _prepare(self, script: Script, account: pwd.struct_passwd | None) -> list[str]:
        request, work = script.request, script.work
        variables = request.get("Variables") or []
        for package in request.get("Packages") or []:
            if self.package_cache is None or not self.package_cache.has(package.get("Sha256", "")):
                raise RunnerError(f"Package {package.get('PackageId')} {package.get('Version')} is not in this agent's cache.")
            self.package_cache.extract(package["Sha256"], work / str(package.get("PackageId", "package")))
        syntax, body = request.get("Syntax", "Bash"), request["ScriptBody"]
        if syntax == "Python":
            # octopus.py reads variables.json when imported, at any time: it stays until the script ends.
            _write_private(work / "variables.json", json.dumps(variables))
            _write_private(work / "octopus.py", PYTHON_MODULE)
            _write_private(work / "bootstrap.py", PYTHON_BOOTSTRAP)
            _write_private(work / "script.py", body)
            return [_python_for(account, self.environment) if account else sys.executable, "-u", "bootstrap.py"]
        if syntax == "PowerShell":
            _write_private(work / "variables.json", json.dumps(variables))
            _write_private(work / "bootstrap.ps1", POWERSHELL_BOOTSTRAP)
            _write_private(work / "script.ps1", body)
            return ["pwsh", "-NoProfile", "-NonInteractive", "-File", "bootstrap.ps1"]
        # Bash needs no variables.json: the bootstrap holds the values and deletes itself once bash has it open.
        assignments = "".join(f"octopus_parameters[{shlex.quote(v['Name'])}]={shlex.quote(str(v.get('Value', '')))}\n"
                              for v in variables)
        _write_private(work / "bootstrap.sh", 'rm -f -- "$0"\ndeclare -A octopus_parameters\n' + assignments + BASH_BOOTSTRAP +
                       'cd "$(dirname "$0")"\nsource ./script.sh\n')
        _write_private(work / "script.sh", bash_line_endings(body))
        return ["bash", "bootstrap.sh"]

    def _execute(self, script: Script, account: pwd.struct_passwd | None) -> None:
        argv = self._prepare(script, account)
        env = dict(os.environ if self.environment is None else self.environment, PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(script.work), OCTOPUS_WORK_FOLDER=str(script.work))
        env[MARKER] = script.ticket
        identity: dict = {}
        if account is not None:
            # Everything was written as root into a folder only root could enter; now it becomes the account's.
            for folder, directories, files in os.walk(script.work):
                for name in directories + files:
                    os.lchown(os.path.join(folder, name), account.pw_uid, account.pw_gid)
            os.chown(script.work, account.pw_uid, account.pw_gid)
            env.update(HOME=str(script.work), USER=account.pw_name, LOGNAME=account.pw_name, TMPDIR=str(script.work))
            identity = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        with self.spawn_lock:
            script.process = subprocess.Popen(argv, cwd=script.work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, start_new_session=True, **identity)
        with script.condition:
            script.state = "Running"
            script.condition.notify_all()
        if script.cancelled:  # cancelled while it was being started: cancel found no process to kill
            self._kill(script)
        timeout = script.request.get("TimeoutSeconds")
        timed_out = self._pump(script, timeout if isinstance(timeout, (int, float)) and timeout > 0 else None)
        code = script.process.wait()
        failure = f"Timed out after {timeout} seconds." if timed_out else None
        if script.cancelled:
            failure = "The script was cancelled."
        elif code != 0 and not script.failure_message:
            failure = failure or f"The script exited with code {code}."
        script.finish(code, failure)

    def _pump(self, script: Script, timeout: float | None) -> bool:
        """Read both pipes with one selector until they close (or DRAIN_SECONDS after the script
        exited, when background children hold them open). Returns whether the timeout struck."""
        process = script.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ, _Stream("stdout"))
        selector.register(process.stderr, selectors.EVENT_READ, _Stream("stderr"))
        deadline = time.monotonic() + timeout if timeout else None
        exited_at: float | None = None
        timed_out = False
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not selector.get_map() or now - exited_at > DRAIN_SECONDS):
                    break
                if deadline is not None and now > deadline and not timed_out:
                    timed_out = True
                    script.add_line("stderr", f"The script did not finish within {timeout} seconds and was stopped.", "Error")
                    threading.Thread(target=self._kill, args=(script,), daemon=True).start()
                if not script.has_room() and not script.cancelled and not timed_out:
                    with script.condition:  # the caller is behind: let the child wait on its full pipe
                        script.condition.wait_for(lambda: script.has_room() or script.cancelled, timeout=0.25)
                    if exited_at is not None:
                        exited_at = time.monotonic()
                    continue
                if not selector.get_map():
                    time.sleep(0.1)
                    continue
                for key, _ in selector.select(timeout=0.25):
                    chunk = os.read(key.fd, READ_CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        self._feed(script, key.data, b"\n" if key.data.buffer else b"")
                    else:
                        self._feed(script, key.data, chunk)
        finally:
            for key in list(selector.get_map().values()):
                self._feed(script, key.data, b"\n" if key.data.buffer else b"")
            selector.close()
            process.stdout.close()
            process.stderr.close()
        return timed_out

    def _feed(self, script: Script, stream: _Stream, chunk: bytes) -> None:
        """Split a chunk into lines; a line is cut at MAX_LINE bytes and the rest of it dropped."""
        lines: list[tuple[str, str, str | None, bool]] = []
        start = 0
        while start < len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            if not stream.discarding:
                stream.buffer += chunk[start:min(end, start + MAX_LINE + 1 - len(stream.buffer))]
                if len(stream.buffer) > MAX_LINE:
                    lines.append((stream.name, stream.buffer[:MAX_LINE].decode("utf-8", errors="replace"), None, True))
                    stream.buffer = bytearray()
                    stream.discarding = newline < 0
                elif newline >= 0:
                    self._line(script, stream.name, stream.buffer.decode("utf-8", errors="replace").rstrip("\r"), lines)
                    stream.buffer = bytearray()
            elif newline >= 0:
                stream.discarding = False
            if newline < 0:
                break
            start = newline + 1
        script.add_lines(lines)

    def _line(self, script: Script, stream: str, text: str, lines: list) -> None:
        match = _SERVICE_MESSAGE.match(text) if stream == "stdout" else None
        if match:
            script.add_lines(lines)  # lines before a category change keep the category they had
            lines.clear()
            self._service_message(script, match.group(1), dict(_ATTRIBUTE.findall(match.group(2))))
        else:
            lines.append((stream, text, None, False))

    def _service_message(self, script: Script, name: str, attributes: dict) -> None:
        categories = {"stdout-warning": "Warning", "stdout-highlight": "Highlight", "stdout-verbose": "Verbose",
                      "stdout-default": "Info", "stdout-error": "Error", "stdout-wait": "Wait"}
        if name in categories:
            script.category["stdout"] = categories[name]
        elif name == "setVariable":
            value, sensitive = _decode(attributes.get("value", "")), _decode(attributes.get("sensitive", "")) == "True"
            if sensitive and value:
                script.add_sensitive(value)
            script.output_variables.append({"Name": _decode(attributes.get("name", "")), "Value": value, "IsSensitive": sensitive})
        elif name == "createArtifact":
            path = (script.work / _decode(attributes.get("path", ""))).resolve()
            # The name is shown on the task page: masked like a log line.
            script.artifacts.append({"Name": script.mask(_decode(attributes.get("name", "")) or path.name), "Path": str(path),
                                     "Length": path.stat().st_size if path.is_file() else 0})
        elif name == "stepFailed":
            # Reported once, as the step's failure message (the server logs it), not also as a line here.
            script.failure_message = script.mask(_decode(attributes.get("message", ""))) or "The step failed."
        elif name == "progress":
            try:
                percentage = max(0, min(100, int(_decode(attributes.get("percentage", "")).strip())))
            except ValueError:
                return
            with script.condition:  # re-entrant: the line and its percentage appear to readers together
                script.add_line("stdout", _decode(attributes.get("message", "")), "Progress")
                script.lines[-1]["Percentage"] = percentage

    def _signal(self, script: Script, sig: int) -> list[int]:
        """Signal the script's process group and every process carrying its marker; returns the latter."""
        if script.process is not None:
            try:
                os.killpg(script.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        marked = marked_processes(script.ticket)
        for pid in marked:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        return marked

    def _kill(self, script: Script) -> None:
        """SIGTERM to the group and every marked descendant (`setsid` ones too), SIGKILL to what is left."""
        process = script.process
        if process is None:
            return
        marked = self._signal(script, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while (process.poll() is None or marked) and time.monotonic() < deadline:
            time.sleep(0.05)
            marked = marked_processes(script.ticket)
        for _ in range(20):  # a script forking while we look: look again until nothing is left
            if not self._signal(script, signal.SIGKILL):
                break
            time.sleep(0.02)
        if self.subreaper:
            self._reap()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _usable_by(path: str, account: pwd.struct_passwd) -> bool:
    """Whether the account can execute `path`: every folder on the way searchable, the file executable."""
    def allowed(info: os.stat_result, user: int, group: int, other: int) -> bool:
        if info.st_uid == account.pw_uid:
            return bool(info.st_mode & user)
        if info.st_gid == account.pw_gid:
            return bool(info.st_mode & group)
        return bool(info.st_mode & other)

    real = Path(os.path.realpath(path))
    try:
        if not allowed(real.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
        return all(allowed(folder.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH) for folder in real.parents)
    except OSError:
        return False


def _python_for(account: pwd.struct_passwd, environment: dict | None) -> str:
    """A Python 3 the account can run: this one if it may, else the first `python3` on the scripts' PATH
    it may (this one may live in a folder only the agent's account can enter)."""
    candidates = [getattr(sys, "_base_executable", "") or sys.executable, sys.executable]
    path = (environment if environment is not None else os.environ).get("PATH") or os.defpath
    candidates += [os.path.join(folder, "python3") for folder in path.split(os.pathsep) if folder]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and _usable_by(candidate, account):
            return os.path.realpath(candidate)
    raise RunnerError(f"No Python 3 that the account {account.pw_name!r} may run was found on the PATH.")
