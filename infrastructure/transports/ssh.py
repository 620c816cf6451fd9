"""SSH workers: paramiko, the host key pinned by its SHA-256 fingerprint, bash only.

One connection per worker (cached), a channel per use. Where the host has Python 3.9+, the agent's
zipapp is uploaded once and `ssh-relay` runs on one channel that carries every call (tentacle_agent/
sshrelay.py): the script service lives in a detached daemon on the host, so a dropped connection loses
nothing and the next call continues with the same ticket. Without Python, Bash-only mode runs each
script on its own channel and reads it here with the agent runner's own code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import cast

import paramiko

from infrastructure.models import Worker
from infrastructure.services.accounts import account_secrets
from infrastructure.transports import RetryCallback, TransportError, TrustError, WorkerUnreachable, new_ticket
from infrastructure.transports.envelope import EnvelopeTransport
from tentacle_agent.protocol import CollectedArtifact, CompleteResult, HealthResult, ScriptStatus, StartScriptCommand
from tentacle_agent.bootstraps import BASH_BOOTSTRAP, bash_line_endings
from tentacle_agent.script import ATTRIBUTE, MAX_LINE, SERVICE_MESSAGE, Script

TOOLS = ["bash", "sh", "python3", "pwsh", "kubectl", "az", "aws", "terraform", "docker", "helm", "gcloud"]

# One round trip tells the OS, architecture and tools on PATH.
CAPABILITIES_SCRIPT = (
    'echo "os=$(uname -s)"; echo "arch=$(uname -m)"; echo "kernel=$(uname -r)"; '
    'echo "bash=${BASH_VERSION:-$(bash -c \'echo $BASH_VERSION\' 2>/dev/null)}"; '
    + "".join(f'p=$(command -v {tool} 2>/dev/null) && echo "tool:{tool}=$p"; ' for tool in TOOLS)
)
HEALTH_BOOTSTRAP = (
    'write_warning() { echo "##octopus[stdout-warning]"; echo "$*"; echo "##octopus[stdout-default]"; }\n'
    'write_highlight() { echo "$*"; }\n'
)


def host_key_fingerprint(key: paramiko.PKey) -> str:
    """As `ssh-keygen -l` prints it: SHA256: and unpadded base64 of the key blob's SHA-256."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _connect_transport(host: str, port: int, timeout: float) -> paramiko.Transport:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise TransportError(f"Could not connect to ssh://{host}:{port}/: {error.strerror or error}.") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as error:
        transport.close()
        raise TransportError(f"ssh://{host}:{port}/ did not complete an SSH handshake: {error}.") from None
    return transport


def discover_host_key(host: str, port: int = 22, timeout: float = 10) -> tuple[str, str]:
    """(key type, fingerprint) of the host's key, for the user to confirm before it is pinned."""
    transport = _connect_transport(host, port, timeout)
    try:
        key = transport.get_remote_server_key()
        return key.get_name(), host_key_fingerprint(key)
    finally:
        transport.close()


def _load_private_key(text: str, passphrase: str) -> paramiko.PKey:
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except (paramiko.SSHException, ValueError):
            continue
    raise TransportError("The account's private key cannot be read.")


# One connection per worker, reused by every step (a new channel each): paramiko is slow to connect.
_connections: dict[tuple, paramiko.Transport] = {}
_relays: dict[tuple, "_Relay"] = {}
_hosts: dict[tuple, "_Host"] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_connections_lock = threading.Lock()
REMOTE_HOME = ".reef-ssh-worker"  # apart from an installed agent's own ~/.reef-tentacle
RELAY_IDLE_SECONDS = 300  # the remote daemon leaves after this long with no client and no running script
# Prints the path of a Python the agent can run on (3.9+), or nothing: then the host runs Bash only.
# The interpreter itself (sys.executable), not a shim in front of it: the relay starts faster.
PYTHON_PROBE = ("for p in python3 python; do command -v $p >/dev/null 2>&1 && "
                "$p -c 'import sys; assert sys.version_info >= (3, 9); print(sys.executable)' 2>/dev/null && "
                "exit 0; done; true")
RELAY_MAIN = ("import os, sys; sys.path.insert(0, os.path.abspath(sys.argv[1])); "
              "from tentacle_agent.sshrelay import main; sys.exit(main(sys.argv[2:]))")
MAX_ANSWER = 64 * 1024 * 1024  # as the listening transport's
_DROPPED = (socket.timeout, OSError, EOFError, paramiko.SSHException)


class _Host:
    """What one worker's host has: a Python for the agent (else Bash only) and the agent's path."""

    def __init__(self, python: str, agent_path: str):
        self.python, self.agent_path = python, agent_path


class _Relay:
    """One channel running `ssh-relay`: requests are written as lines and answered out of order by Id,
    so every call on this worker (20 scripts' long polls at once) shares one channel."""

    def __init__(self, channel: paramiko.Channel, where: str):
        self.channel, self.where = channel, where
        self.waiters: dict[str, tuple[threading.Event, list]] = {}
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.failure: str | None = None
        self.answered = False
        threading.Thread(target=self._read, name="ssh-relay-reader", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.failure is None and not self.channel.closed

    def request(self, envelope: dict, timeout: float) -> dict:
        done: threading.Event = threading.Event()
        box: list = []
        with self.lock:
            if self.failure is not None:
                raise TransportError(self.failure)
            self.waiters[envelope["Id"]] = (done, box)
        try:
            try:
                with self.write_lock:
                    self.channel.sendall(json.dumps(envelope).encode() + b"\n")
            except _DROPPED as error:
                self.fail(f"{self.where} closed the script session ({error or type(error).__name__})")
                raise _Stale() from None
            if not done.wait(timeout):
                raise TransportError(f"{self.where} did not answer within {timeout:.0f}s.")
            if isinstance(box[0], str):
                raise TransportError(box[0])
            return box[0]
        finally:
            with self.lock:
                self.waiters.pop(envelope["Id"], None)

    def fail(self, reason: str) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = reason
            waiters = list(self.waiters.values())
        for done, box in waiters:
            box.append(self.failure)
            done.set()
        with contextlib.suppress(Exception):
            self.channel.close()

    def _read(self) -> None:
        buffer = bytearray()
        reason = f"{self.where} closed the script session"
        try:
            while True:
                chunk = self.channel.recv(1 << 16)  # ≥32 KiB reads: paramiko is slow in small ones
                if not chunk:
                    if self.channel.recv_stderr_ready():
                        reason += ": " + self.channel.recv_stderr(4096).decode(errors="replace").strip()
                    break
                start = len(buffer)
                buffer += chunk
                newline = buffer.find(b"\n", start)
                while newline >= 0:
                    line = bytes(buffer[:newline])
                    del buffer[:newline + 1]
                    self._deliver(line)
                    newline = buffer.find(b"\n")
                if len(buffer) > MAX_ANSWER:
                    reason += f" after sending an answer larger than {MAX_ANSWER} bytes"
                    break
        except _DROPPED as error:
            reason += f" ({error or type(error).__name__})"
        self.fail(reason + ".")

    def _deliver(self, line: bytes) -> None:
        try:
            answer = json.loads(line)
        except ValueError:
            return
        with self.lock:
            waiter = self.waiters.get(str(answer.get("Id"))) if isinstance(answer, dict) else None
        self.answered = True
        if waiter is not None:
            waiter[1].append(answer)
            waiter[0].set()


class _Stale(Exception):
    """A cached relay channel that turned out dead before our request went out: safe to resend once."""


class SshTransport(EnvelopeTransport):
    """The agent's runner over a relay channel where the host has Python (scripts survive a dropped
    connection in the remote daemon); plain bash on a channel per script where it has not."""

    def __init__(self, worker: Worker, *, on_retry: RetryCallback | None = None):
        super().__init__(worker, on_retry=on_retry)

    # Connections -----------------------------------------------------------------------------------

    def _key(self) -> tuple:
        w = self.worker
        return (w.pk, w.host, w.port, w.fingerprint, w.account_id, w.account.password_encrypted if w.account else "",
                w.account.private_key_encrypted if w.account else "")

    def _lock(self) -> threading.Lock:
        with _connections_lock:
            return _key_locks.setdefault(self._key(), threading.Lock())

    def _session(self) -> paramiko.Transport:
        key = self._key()
        with self._lock():
            cached = _connections.get(key)
            if cached is not None and cached.is_active():
                return cached
            if cached is not None:
                cached.close()
            transport = self._connect()
            _connections[key] = transport
            return transport

    def _connect(self) -> paramiko.Transport:
        w = self.worker
        try:
            transport = _connect_transport(w.host, w.port or 22, self.timeout)
        except TransportError as error:
            raise WorkerUnreachable(str(error)) from None
        seen = host_key_fingerprint(transport.get_remote_server_key())
        if seen != w.fingerprint:
            transport.close()
            raise TrustError(f"The host key of {w.endpoint_uri} is {seen}, not the pinned {w.fingerprint}: "
                             "refusing to connect (re-confirm the fingerprint if the host was rebuilt).")
        if w.account is None:
            transport.close()
            raise TransportError(f"{w.name} has no account to sign in with.", retryable=False)
        secrets = account_secrets(w.account)
        try:
            if w.account.account_type == w.account.AccountType.SSH_KEY_PAIR:
                transport.auth_publickey(w.account.username, _load_private_key(secrets["private_key"], secrets["passphrase"]))
            else:
                transport.auth_password(w.account.username, secrets["password"])
        except paramiko.AuthenticationException:
            transport.close()
            raise TransportError(f"{w.endpoint_uri} refused the credentials of account {w.account.name} "
                                 f"(user {w.account.username}).", retryable=False) from None
        except (paramiko.SSHException, OSError, EOFError) as error:
            transport.close()
            raise WorkerUnreachable(f"Signing in to {w.endpoint_uri} failed: {error}.") from None
        transport.set_keepalive(15)
        return transport

    def run(self, transport: paramiko.Transport, command: str, stdin: str | bytes = "", timeout: float = 300) -> tuple[int, str, str]:
        """One command on its own channel, to its end: (exit code, stdout, stderr)."""
        try:
            channel = transport.open_session(timeout=self.timeout)
        except _DROPPED as error:
            raise TransportError(f"{self.worker.endpoint_uri} refused a channel: {error or type(error).__name__}.") from None
        channel.settimeout(timeout)
        try:
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                if channel.recv_ready():
                    out += channel.recv(65536)
                elif channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                elif channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                elif time.monotonic() > deadline:
                    raise TransportError(f"The command on {self.worker.endpoint_uri} did not finish within {timeout:.0f}s.")
                elif channel.closed and not channel.exit_status_ready():
                    raise TransportError(f"{self.worker.endpoint_uri} closed the channel.")
                else:
                    time.sleep(0.005)
            return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        except _DROPPED as error:
            raise TransportError(f"{self.worker.endpoint_uri} stopped answering ({error or 'timed out'}).") from None
        finally:
            channel.close()

    def _host(self, transport: paramiko.Transport) -> _Host | None:
        """Probed once per worker: None on a host without a usable Python (Bash-only mode)."""
        key = self._key()
        if key in _hosts:
            return _hosts[key]
        _, out, _ = self.run(transport, PYTHON_PROBE, timeout=self.timeout)
        python = out.strip().splitlines()[-1] if out.strip() else ""
        host = _Host(python, self._ensure_agent(transport)) if python else None
        _hosts[key] = host  # type: ignore[assignment]
        return host

    def bash_only(self) -> bool:
        return self.with_retries("connect", lambda: self._host(self._session())) is None

    def _relay(self) -> _Relay:
        key = self._key()
        relay = _relays.get(key)
        if relay is not None and relay.alive:
            return relay
        if relay is not None and not relay.answered:
            _hosts.pop(key, None)  # it never worked: look again (the agent removed? Python replaced?)
        transport = self._session()
        host = self._host(transport)
        if host is None:
            raise TransportError(f"{self.worker.endpoint_uri} has no Python 3.9+: SSH workers without it run Bash "
                                 "scripts only, without packages.", retryable=False)
        with self._lock():
            relay = _relays.get(key)
            if relay is not None and relay.alive:
                return relay
            try:
                channel = transport.open_session(timeout=self.timeout)
                # A home per agent build: a daemon of an older build never serves a newer one.
                # `tentacle ssh-relay`, started without site packages or the CLI's imports: a reconnect waits for it.
                channel.exec_command(f"{host.python} -S -c {shlex.quote(RELAY_MAIN)} {host.agent_path} "
                                     f"--home {host.agent_path.removesuffix('.pyz')} --idle-seconds {RELAY_IDLE_SECONDS}")
            except _DROPPED as error:
                raise TransportError(f"{self.worker.endpoint_uri} refused a channel: {error or type(error).__name__}.") from None
            relay = _relays[key] = _Relay(channel, self.worker.endpoint_uri)
            return relay

    def exchange(self, envelope: dict, timeout: float) -> dict:
        for _ in range(2):
            relay = self._relay()
            try:
                return relay.request(envelope, timeout)
            except _Stale:
                continue  # the connection died since the last call: reconnect once, at once
        raise TransportError(f"{self.worker.endpoint_uri} closed the script session twice in a row.")

    # The contract ----------------------------------------------------------------------------------

    def health(self) -> HealthResult:
        def probe() -> str:
            return self.run(self._session(), "sh -s", CAPABILITIES_SCRIPT, timeout=self.timeout)[1]

        _hosts.pop(self._key(), None)  # a health check looks at the host afresh (Python installed since?)

        return _parse_capabilities(self.with_retries("Health", probe))

    def start_script(self, command: StartScriptCommand) -> str:
        if self.bash_only():
            return self.with_retries("StartScript", lambda: _BashScript.start(self, command))
        return super().start_script(command)

    def get_status(self, ticket: str, after_sequence: int = -1, wait: float = 0) -> ScriptStatus:
        script = _BashScript.find(ticket)
        if script is not None:
            return script.status(after_sequence, wait)
        return super().get_status(ticket, after_sequence, wait)

    def cancel_script(self, ticket: str) -> ScriptStatus:
        script = _BashScript.find(ticket)
        if script is not None:
            return script.cancel(self)
        return super().cancel_script(ticket)

    def complete_script(self, ticket: str) -> CompleteResult:
        script = _BashScript.find(ticket)
        if script is not None:
            return script.complete(self)
        return super().complete_script(ticket)

    def has_package(self, sha256: str) -> bool:
        if self.bash_only():
            return False
        return super().has_package(sha256)

    def upload_package(self, sha256: str, file_name: str, data: bytes) -> None:
        if self.bash_only():
            raise TransportError(f"{self.worker.endpoint_uri} has no Python 3.9+: packages need the agent's runner.",
                                 retryable=False)
        super().upload_package(sha256, file_name, data)

    def _ensure_agent(self, transport: paramiko.Transport) -> str:
        """Upload the agent once per version (named by its hash), with pipelined SFTP writes."""
        from infrastructure.distribution import agent_bundle

        data, sha256 = agent_bundle()
        path = f"{REMOTE_HOME}/reef-tentacle-{sha256[:16]}.pyz"
        try:
            sftp = transport.open_sftp_client()
        except paramiko.SSHException:  # a host without the SFTP subsystem: stream it through cat instead
            code, _, err = self.run(transport, f"umask 077; mkdir -p {REMOTE_HOME}; test -s {path} || "
                                               f"{{ cat > {path}.part && mv {path}.part {path}; }}",
                                    stdin=data, timeout=max(60, self.timeout))
            if code != 0:
                raise TransportError(f"Could not copy the agent to {self.worker.endpoint_uri}: {err.strip()}") from None
            return path
        try:
            try:
                if sftp.stat(path).st_size == len(data):
                    return path
            except FileNotFoundError:
                pass
            with contextlib.suppress(OSError):  # already there
                sftp.mkdir(REMOTE_HOME, mode=0o700)
            with sftp.open(path + ".part", "wb") as remote:
                remote.set_pipelined(True)
                for offset in range(0, len(data), 32768):
                    remote.write(data[offset:offset + 32768])
            sftp.posix_rename(path + ".part", path)
            return path
        finally:
            sftp.close()


class _BashScript:
    """Bash-only mode, for hosts without Python: the script runs on its own channel and the server reads
    it with the agent runner's own `Script` (numbering, masking, service messages), so lines, exit code
    and output variables are the same as with the agent. It does not survive a dropped connection."""

    scripts: dict[str, "_BashScript"] = {}
    lock = threading.Lock()

    def __init__(self, ticket: str, command: StartScriptCommand, work: str, channel: paramiko.Channel, where: str):
        self.ticket, self.work, self.channel, self.where = ticket, work, channel, where
        self.script = Script(ticket, dict(command), Path(work))
        self.pid: int | None = None
        self.pid_known = threading.Event()
        threading.Thread(target=self._read, name=f"ssh-bash-{ticket[:8]}", daemon=True).start()

    @classmethod
    def find(cls, ticket: str) -> "_BashScript | None":
        with cls.lock:
            return cls.scripts.get(ticket)

    @classmethod
    def start(cls, transport: SshTransport, command: StartScriptCommand) -> str:
        ticket = command.get("Ticket") or new_ticket()
        existing = cls.find(ticket)
        if existing is not None:
            return ticket  # a repeat of a start we already made
        if command.get("Syntax", "Bash") != "Bash":
            raise TransportError(f"{transport.worker.endpoint_uri} has no Python 3.9+: SSH workers without it run Bash only.",
                                 retryable=False)
        if command.get("Packages"):
            raise TransportError(f"{transport.worker.endpoint_uri} has no Python 3.9+: packages need the agent's runner.",
                                 retryable=False)
        variables = command.get("Variables") or []
        assignments = "".join(f"octopus_parameters[{shlex.quote(v['Name'])}]={shlex.quote(str(v.get('Value', '')))}\n"
                              for v in variables)
        bootstrap = ("declare -A octopus_parameters\n" + assignments + BASH_BOOTSTRAP +
                     'cd "$(dirname "$0")"\nsource ./script.sh\n').encode()
        body = bash_line_endings(command["ScriptBody"]).encode()
        work = f"{REMOTE_HOME}/bash/Work/{ticket}"
        timeout = command.get("TimeoutSeconds")
        runner = f"timeout -s KILL {int(timeout)} bash bootstrap.sh" if timeout else "bash bootstrap.sh"
        # `echo $$`: the session leader's pid, so cancel can kill its whole process group.
        remote = (f"echo $$; umask 077; mkdir -p {work} && cd {work} && head -c {len(bootstrap)} > bootstrap.sh && "
                  f"cat > script.sh && exec {runner} </dev/null")
        session = transport._session()
        try:
            channel = session.open_session(timeout=transport.timeout)
            channel.exec_command(remote)
            channel.sendall(bootstrap + body)
            channel.shutdown_write()
        except _DROPPED as error:
            raise TransportError(f"{transport.worker.endpoint_uri} refused a channel: {error or type(error).__name__}.") from None
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
        except _DROPPED as error:
            self.script.add_line("stderr", f"The SSH connection to {self.where} was lost: the script's outcome is unknown.", "Error")
            self.script.finish(None, f"The SSH connection to {self.where} was lost ({error or type(error).__name__}).")
            return
        failure = None
        timeout = self.script.request.get("TimeoutSeconds")
        if self.script.cancelled:
            failure = "The script was cancelled."
        elif code == 137 and timeout:
            self.script.add_line("stderr", f"The script did not finish within {timeout} seconds and was stopped.", "Error")
            failure = f"Timed out after {timeout} seconds."
        elif code != 0 and not self.script.failure_message:
            failure = f"The script exited with code {code}."
        self.script.finish(code, failure)

    def _take(self, stream: str, pending: bytearray, chunk: bytes) -> None:
        start = len(pending)
        pending += chunk
        newline = pending.find(b"\n", start)
        while newline >= 0:
            line = bytes(pending[:newline])
            del pending[:newline + 1]
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
        return cast(ScriptStatus, _wait_for_status(self.script, after, wait))

    def cancel(self, transport: SshTransport) -> ScriptStatus:
        script = self.script
        script.cancelled = True
        if script.state != "Complete":
            script.add_line("stdout", "The script was cancelled.", "Warning")
            self.pid_known.wait(5)
            if self.pid and self.pid > 0:
                group = f"-{self.pid}"
                transport.run(transport._session(), f"kill -TERM -- {group} 2>/dev/null; "
                                                    f"for i in 1 2 3 4 5 6 7 8 9 10 11 12; do kill -0 -- {group} 2>/dev/null || exit 0; sleep 0.25; done; "
                                                    f"kill -KILL -- {group} 2>/dev/null; true", timeout=30)
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
            relative = artifact["Path"][found + len(self.work) + 1:] if found >= 0 else artifact["Path"]
            code, out, _ = transport.run(session, f"cd {self.work} && test -f {shlex.quote(relative)} && base64 < {shlex.quote(relative)}",
                                         timeout=120)
            if code == 0:
                content = base64.b64decode("".join(out.split()))
                artifacts.append({"Name": name, "Length": len(content), "ContentBase64": base64.b64encode(content).decode()})
        transport.run(session, f"rm -rf {self.work}", timeout=60)
        with _BashScript.lock:
            _BashScript.scripts.pop(self.ticket, None)
        return {"Artifacts": artifacts}


def _wait_for_status(script: Script, after: int, wait: float) -> dict:
    wait = max(0.0, min(float(wait), 30.0))
    with script.condition:
        script.condition.wait_for(lambda: len(script.lines) > after + 1 or script.state == "Complete", timeout=wait)
        return script.snapshot(after)


def _parse_capabilities(out: str) -> HealthResult:
    values: dict[str, str] = {}
    tools: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("tool:"):
            tools[key[5:]] = value
        elif key:
            values[key] = value
    shells = [shell for shell in ("bash", "sh", "pwsh") if shell in tools]
    return {"OperatingSystem": {"Linux": "Linux", "Darwin": "macOS"}.get(values.get("os", ""), values.get("os", "Unknown")),
            "Architecture": values.get("arch", "Unknown"), "Kernel": values.get("kernel", ""), "Shells": shells,
            "ShellVersion": values.get("bash", ""), "Tools": {k: v for k, v in tools.items() if k not in shells},
            "AgentVersion": None, "Transport": "ssh"}
