"""What a script's work folder holds besides the script: the bootstrap that gives Bash, Python and PowerShell
scripts Octopus's helpers (`get_octopusvariable`, `set_octopusvariable`, `new_octopusartifact`, `fail_step`…)."""

from __future__ import annotations

import os
from pathlib import Path

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


def bash_line_endings(body: str) -> str:
    """Browsers send a textarea's lines ending in CRLF; bash would read `id\r` as the command name."""
    return body.replace("\r\n", "\n")


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
