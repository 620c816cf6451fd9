"""The script runner: the one place scripts run, whatever transport asked (DESIGN.md).

1. A ticket gets a work folder with the script, its variables and a bootstrap (Octopus's
   `get_octopusvariable`, `set_octopusvariable`, `new_octopusartifact`, `fail_step`, `write_warning`…).
2. The child runs in its own session; stdout and stderr are read line by line by two threads.
3. Service messages (`##octopus[...]`) are taken out of the output and recorded; every other line is
   masked (sensitive values) and numbered before anyone can read it.
4. `status()` long-polls on a Condition, so a reader hears of a new line or the end at once.
5. Cancel and timeout kill the whole process group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

MASK = "********"
MAX_LINE = 64 * 1024
MAX_LINES_PER_STATUS = 5000
MAX_ARTIFACT_BYTES = 100 * 1024 * 1024
KILL_GRACE_SECONDS = 3
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


class Script:
    def __init__(self, ticket: str, request: dict, work: Path):
        self.ticket = ticket
        self.request = request
        self.work = work
        self.state = "Pending"
        self.exit_code: int | None = None
        self.failure_message: str | None = None
        self.lines: list[dict] = []
        self.output_variables: list[dict] = []
        self.artifacts: list[dict] = []
        self.condition = threading.Condition()
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.sensitive = sorted({str(v.get("Value", "")) for v in request.get("Variables", [])
                                 if v.get("IsSensitive") and str(v.get("Value", ""))}, key=len, reverse=True)
        self.category = {"stdout": "Info", "stderr": "Error"}

    def mask(self, text: str) -> str:
        for value in self.sensitive:
            text = text.replace(value, MASK)
        return text

    def add_line(self, stream: str, text: str, category: str | None = None) -> None:
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + " …(line truncated)"
        with self.condition:
            self.lines.append({"Sequence": len(self.lines), "Time": _now(), "Stream": stream,
                               "Category": category or self.category[stream], "Text": self.mask(text)})
            self.condition.notify_all()

    def finish(self, exit_code: int | None, failure: str | None = None) -> None:
        with self.condition:
            self.exit_code = exit_code
            if failure and not self.failure_message:
                self.failure_message = failure
            self.state = "Complete"
            self.condition.notify_all()

    def snapshot(self, after: int) -> dict:
        start = max(0, after + 1)
        logs = self.lines[start:start + MAX_LINES_PER_STATUS]
        return {"Ticket": self.ticket, "State": self.state, "ExitCode": self.exit_code, "Logs": logs,
                "NextSequence": start + len(logs), "HasMore": start + len(logs) < len(self.lines), "OutputVariables": list(self.output_variables),
                "Artifacts": list(self.artifacts), "FailureMessage": self.failure_message}


class ScriptRunner:
    def __init__(self, work_root: Path, package_cache=None, environment: dict | None = None):
        """`environment`: what scripts see instead of this process's environment (the server's built-in
        worker passes a clean one, so scripts never see its database or broker credentials)."""
        self.environment = dict(environment) if environment is not None else None
        self.work_root = Path(work_root)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.package_cache = package_cache
        self.scripts: dict[str, Script] = {}
        self.lock = threading.Lock()
        self.mutexes: dict[str, threading.Lock] = {}

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
        ticket = uuid.uuid4().hex
        work = self.work_root / ticket
        work.mkdir(mode=0o700)
        script = Script(ticket, request, work)
        with self.lock:
            self.scripts[ticket] = script
        threading.Thread(target=self._run, args=(script,), name=f"script-{ticket[:8]}", daemon=True).start()
        return ticket

    def status(self, ticket: str, after: int = -1, wait: float = 0) -> dict:
        script = self._get(ticket)
        wait = max(0.0, min(float(wait), 30.0))
        with script.condition:
            script.condition.wait_for(lambda: len(script.lines) > after + 1 or script.state == "Complete", timeout=wait)
            return script.snapshot(after)

    def cancel(self, ticket: str) -> dict:
        script = self._get(ticket)
        script.cancelled = True
        if script.state != "Complete":
            script.add_line("stdout", "The script was cancelled.", "Warning")
            self._kill(script)
        return script.snapshot(len(script.lines) - 1)

    def complete(self, ticket: str) -> dict:
        script = self._get(ticket)
        if script.state != "Complete":
            self.cancel(ticket)
            with script.condition:
                script.condition.wait_for(lambda: script.state == "Complete", timeout=KILL_GRACE_SECONDS + 5)
        artifacts = []
        for artifact in script.artifacts:
            path = Path(artifact["Path"])
            if path.is_file() and path.stat().st_size <= MAX_ARTIFACT_BYTES:
                artifacts.append({"Name": artifact["Name"], "Length": path.stat().st_size,
                                  "ContentBase64": base64.b64encode(path.read_bytes()).decode()})
        shutil.rmtree(script.work, ignore_errors=True)
        with self.lock:
            self.scripts.pop(ticket, None)
        return {"Artifacts": artifacts}

    def cancel_all(self) -> None:
        for ticket in list(self.scripts):
            try:
                self.cancel(ticket)
            except NotFound:
                pass

    def _get(self, ticket: str) -> Script:
        script = self.scripts.get(ticket) if isinstance(ticket, str) else None
        if script is None:
            raise NotFound(f"No script with ticket {ticket!r} on this agent.")
        return script

    # Running --------------------------------------------------------------------------------------

    def _run(self, script: Script) -> None:
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
            self._execute(script)
        except Exception as error:  # never leave a reader waiting on a script that died in the runner
            script.add_line("stderr", f"The agent could not run the script: {error}", "Fatal")
            script.finish(None, str(error))
        finally:
            if mutex is not None:
                mutex.release()

    def _prepare(self, script: Script) -> list[str]:
        request, work = script.request, script.work
        variables = request.get("Variables") or []
        (work / "variables.json").write_text(json.dumps(variables), encoding="utf-8")
        for package in request.get("Packages") or []:
            if self.package_cache is None or not self.package_cache.has(package.get("Sha256", "")):
                raise RunnerError(f"Package {package.get('PackageId')} {package.get('Version')} is not in this agent's cache.")
            self.package_cache.extract(package["Sha256"], work / str(package.get("PackageId", "package")))
        syntax, body = request.get("Syntax", "Bash"), request["ScriptBody"]
        if syntax == "Python":
            (work / "octopus.py").write_text(PYTHON_MODULE, encoding="utf-8")
            (work / "bootstrap.py").write_text(PYTHON_BOOTSTRAP, encoding="utf-8")
            (work / "script.py").write_text(body, encoding="utf-8")
            return [sys.executable, "-u", "bootstrap.py"]
        if syntax == "PowerShell":
            (work / "bootstrap.ps1").write_text(POWERSHELL_BOOTSTRAP, encoding="utf-8")
            (work / "script.ps1").write_text(body, encoding="utf-8")
            return ["pwsh", "-NoProfile", "-NonInteractive", "-File", "bootstrap.ps1"]
        assignments = "".join(f"octopus_parameters[{shlex.quote(v['Name'])}]={shlex.quote(str(v.get('Value', '')))}\n"
                              for v in variables)
        (work / "bootstrap.sh").write_text("declare -A octopus_parameters\n" + assignments + BASH_BOOTSTRAP +
                                           'cd "$(dirname "$0")"\nsource ./script.sh\n', encoding="utf-8")
        (work / "script.sh").write_text(body, encoding="utf-8")
        return ["bash", "bootstrap.sh"]

    def _execute(self, script: Script) -> None:
        argv = self._prepare(script)
        env = dict(os.environ if self.environment is None else self.environment, PYTHONUNBUFFERED="1", PYTHONPATH=str(script.work), OCTOPUS_WORK_FOLDER=str(script.work))
        script.process = subprocess.Popen(argv, cwd=script.work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True)
        with script.condition:
            script.state = "Running"
            script.condition.notify_all()
        readers = [threading.Thread(target=self._read, args=(script, script.process.stdout, "stdout"), daemon=True),
                   threading.Thread(target=self._read, args=(script, script.process.stderr, "stderr"), daemon=True)]
        for reader in readers:
            reader.start()
        timeout = script.request.get("TimeoutSeconds")
        try:
            code = script.process.wait(timeout=timeout if isinstance(timeout, (int, float)) and timeout > 0 else None)
            failure = None
        except subprocess.TimeoutExpired:
            script.add_line("stderr", f"The script did not finish within {timeout} seconds and was stopped.", "Error")
            self._kill(script)
            code, failure = script.process.wait(), f"Timed out after {timeout} seconds."
        for reader in readers:
            reader.join(5)
        if script.cancelled:
            failure = "The script was cancelled."
        elif code != 0 and not script.failure_message:
            failure = failure or f"The script exited with code {code}."
        script.finish(code, failure)

    def _read(self, script: Script, pipe, stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            match = _SERVICE_MESSAGE.match(text) if stream == "stdout" else None
            if match:
                self._service_message(script, match.group(1), dict(_ATTRIBUTE.findall(match.group(2))))
            else:
                script.add_line(stream, text)
        pipe.close()

    def _service_message(self, script: Script, name: str, attributes: dict) -> None:
        categories = {"stdout-warning": "Warning", "stdout-highlight": "Highlight", "stdout-verbose": "Verbose",
                      "stdout-default": "Info", "stdout-error": "Error", "stdout-wait": "Wait"}
        if name in categories:
            script.category["stdout"] = categories[name]
        elif name == "setVariable":
            value, sensitive = _decode(attributes.get("value", "")), _decode(attributes.get("sensitive", "")) == "True"
            if sensitive and value:
                script.sensitive = sorted(set(script.sensitive) | {value}, key=len, reverse=True)
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

    def _kill(self, script: Script) -> None:
        process = script.process
        if process is None:
            return
        # The whole group, even after the leader exited: its children may still be running.
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group: children that ignored SIGTERM too
        except ProcessLookupError:
            pass
