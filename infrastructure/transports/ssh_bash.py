"""Bash-only mode, for SSH hosts without Python: each script on its own channel, read here with the agent's `Script`."""

from __future__ import annotations

import base64
import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import paramiko

from infrastructure.transports import TransportError, new_ticket
from infrastructure.transports.ssh_relay import DROPPED
from tentacle_agent.bootstraps import BASH_BOOTSTRAP, bash_line_endings
from tentacle_agent.protocol import CollectedArtifact, CompleteResult, ScriptStatus, StartScriptCommand
from tentacle_agent.script import ATTRIBUTE, MAX_LINE, SERVICE_MESSAGE, Script

if TYPE_CHECKING:
    from infrastructure.transports.ssh import SshTransport


class BashScript:
    """Bash-only mode, for hosts without Python: the script runs on its own channel and the server reads
    it with the agent runner's own `Script` (numbering, masking, service messages), so lines, exit code
    and output variables are the same as with the agent. It does not survive a dropped connection."""

    scripts: dict[str, BashScript] = {}
    lock = threading.Lock()

    def __init__(self, ticket: str, command: StartScriptCommand, work: str, channel: paramiko.Channel, where: str):
        self.ticket, self.work, self.channel, self.where = ticket, work, channel, where
        self.script = Script(ticket, dict(command), Path(work))
        self.pid: int | None = None
        self.pid_known = threading.Event()
        threading.Thread(target=self._read, name=f"ssh-bash-{ticket[:8]}", daemon=True).start()

    @classmethod
    def find(cls, ticket: str) -> BashScript | None:
        with cls.lock:
            return cls.scripts.get(ticket)

    @classmethod
    def start(cls, transport: SshTransport, command: StartScriptCommand, *, home: str) -> str:
        """`home`: the folder on the host whose bash/Work/<ticket> the script runs in."""
        ticket = command.get("Ticket") or new_ticket()
        existing = cls.find(ticket)
        if existing is not None:
            return ticket  # a repeat of a start we already made
        if command.get("Syntax", "Bash") != "Bash":
            raise TransportError(
                f"{transport.worker.endpoint_uri} has no Python 3.9+: SSH workers without it run Bash only.",
                retryable=False,
            )
        if command.get("Packages"):
            raise TransportError(
                f"{transport.worker.endpoint_uri} has no Python 3.9+: packages need the agent's runner.",
                retryable=False,
            )
        variables = command.get("Variables") or []
        assignments = "".join(
            f"octopus_parameters[{shlex.quote(v['Name'])}]={shlex.quote(str(v.get('Value', '')))}\n" for v in variables
        )
        bootstrap = (
            "declare -A octopus_parameters\n"
            + assignments
            + BASH_BOOTSTRAP
            + 'cd "$(dirname "$0")"\nsource ./script.sh\n'
        ).encode()
        body = bash_line_endings(command["ScriptBody"]).encode()
        work = f"{home}/bash/Work/{ticket}"
        timeout = command.get("TimeoutSeconds")
        runner = f"timeout -s KILL {int(timeout)} bash bootstrap.sh" if timeout else "bash bootstrap.sh"
        # `echo $$`: the session leader's pid, so cancel can kill its whole process group.
        remote = (
            f"echo $$; umask 077; mkdir -p {work} && cd {work} && head -c {len(bootstrap)} > bootstrap.sh && "
            f"cat > script.sh && exec {runner} </dev/null"
        )
        session = transport._session()
        try:
            channel = session.open_session(timeout=transport.timeout)
            channel.exec_command(remote)
            channel.sendall(bootstrap + body)
            channel.shutdown_write()
        except DROPPED as error:
            raise TransportError(
                f"{transport.worker.endpoint_uri} refused a channel: {error or type(error).__name__}."
            ) from None
        with cls.lock:
            cls.scripts[ticket] = cls(ticket, command, work, channel, transport.worker.endpoint_uri)
        return ticket

    def _read(self) -> None:
        """One thread reads both streams, so lines are numbered in the order they arrive."""
        pending = {"stdout": bytearray(), "stderr": bytearray()}
        with self.script.condition:
            self.script.state = "Running"
        try:
            while True:
                if self.channel.recv_ready():
                    self._take("stdout", pending["stdout"], self.channel.recv(1 << 16))
                elif self.channel.recv_stderr_ready():
                    self._take("stderr", pending["stderr"], self.channel.recv_stderr(1 << 16))
                elif self.channel.exit_status_ready():
                    break
                elif self.channel.closed:
                    break
                else:
                    time.sleep(0.005)
            for stream, rest in pending.items():
                if rest:
                    self._line(stream, bytes(rest))
            if not self.channel.exit_status_ready():
                raise EOFError("the channel closed")
            code = self.channel.recv_exit_status()
        except DROPPED as error:
            self.script.add_line(
                "stderr", f"The SSH connection to {self.where} was lost: the script's outcome is unknown.", "Error"
            )
            self.script.finish(None, f"The SSH connection to {self.where} was lost ({error or type(error).__name__}).")
            return
        self.script.finish(code, self._failure(code))

    def _failure(self, code: int) -> str | None:
        """Why the script failed, given its exit code; None when it succeeded (or already said why)."""
        timeout = self.script.request.get("TimeoutSeconds")
        if self.script.cancelled:
            return "The script was cancelled."
        if code == 137 and timeout:
            self.script.add_line(
                "stderr", f"The script did not finish within {timeout} seconds and was stopped.", "Error"
            )
            return f"Timed out after {timeout} seconds."
        if code != 0 and not self.script.failure_message:
            return f"The script exited with code {code}."
        return None

    def _take(self, stream: str, pending: bytearray, chunk: bytes) -> None:
        start = len(pending)
        pending += chunk
        newline = pending.find(b"\n", start)
        while newline >= 0:
            line = bytes(pending[:newline])
            del pending[: newline + 1]
            self._line(stream, line)
            newline = pending.find(b"\n")
        if len(pending) > MAX_LINE:  # a line that never ends: the runner truncates it, and so do we
            self._line(stream, bytes(pending))
            pending.clear()

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if stream == "stdout" and self.pid is None:
            self.pid = int(text) if text.isdigit() else -1
            self.pid_known.set()
            return
        match = SERVICE_MESSAGE.match(text) if stream == "stdout" else None
        if match:
            self.script.service_message(match.group(1), dict(ATTRIBUTE.findall(match.group(2))))
        else:
            self.script.add_line(stream, text)

    def status(self, after: int, wait: float) -> ScriptStatus:
        return cast(ScriptStatus, wait_for_status(self.script, after, wait))

    def cancel(self, transport: SshTransport) -> ScriptStatus:
        script = self.script
        script.cancelled = True
        if script.state != "Complete":
            script.add_line("stdout", "The script was cancelled.", "Warning")
            self.pid_known.wait(5)
            if self.pid and self.pid > 0:
                group = f"-{self.pid}"
                transport.run(
                    transport._session(),
                    f"kill -TERM -- {group} 2>/dev/null; "
                    "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do "
                    f"kill -0 -- {group} 2>/dev/null || exit 0; sleep 0.25; done; "
                    f"kill -KILL -- {group} 2>/dev/null; true",
                    timeout=30,
                )
        return cast(ScriptStatus, script.snapshot(len(script.lines) - 1))

    def complete(self, transport: SshTransport) -> CompleteResult:
        script = self.script
        if script.state != "Complete":
            self.cancel(transport)
            with script.condition:
                script.condition.wait_for(lambda: script.state == "Complete", timeout=10)
        artifacts: list[CollectedArtifact] = []
        session = transport._session()
        for artifact in script.artifacts:
            name = artifact["Name"]
            found = artifact["Path"].find(self.work + "/")  # the runner resolved it against our folder, not the host's
            relative = artifact["Path"][found + len(self.work) + 1 :] if found >= 0 else artifact["Path"]
            code, out, _ = transport.run(
                session,
                f"cd {self.work} && test -f {shlex.quote(relative)} && base64 < {shlex.quote(relative)}",
                timeout=120,
            )
            if code == 0:
                content = base64.b64decode("".join(out.split()))
                artifacts.append(
                    {"Name": name, "Length": len(content), "ContentBase64": base64.b64encode(content).decode()}
                )
        transport.run(session, f"rm -rf {self.work}", timeout=60)
        with BashScript.lock:
            BashScript.scripts.pop(self.ticket, None)
        return {"Artifacts": artifacts}


def wait_for_status(script: Script, after: int, wait: float) -> dict:
    wait = max(0.0, min(float(wait), 30.0))
    with script.condition:
        script.condition.wait_for(lambda: len(script.lines) > after + 1 or script.state == "Complete", timeout=wait)
        return script.snapshot(after)
