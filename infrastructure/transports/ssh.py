"""SSH workers: paramiko, the host key pinned by its SHA-256 fingerprint, bash only.

One connection per worker (cached), a channel per use. Where the host has Python 3.9+, the agent's
zipapp is uploaded once and `ssh-relay` runs on one channel that carries every call (ssh_relay.py here,
tentacle_agent/sshrelay.py there): the script service lives in a detached daemon on the host, so a dropped connection
loses
nothing and the next call continues with the same ticket. Without Python, Bash-only mode runs each
script on its own channel and reads it here with the agent runner's own code (ssh_bash.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import secrets
import shlex
import socket
import threading
import time

import paramiko

from infrastructure.distribution import agent_bundle
from infrastructure.models import Worker
from infrastructure.services.accounts import account_secrets
from infrastructure.transports import RetryCallback, TransportError, TrustError, WorkerUnreachable
from infrastructure.transports.envelope import EnvelopeTransport
from infrastructure.transports.ssh_bash import BashScript
from infrastructure.transports.ssh_relay import DROPPED, Relay, Stale
from tentacle_agent.protocol import CompleteResult, HealthResult, ScriptStatus, StartScriptCommand

TOOLS = ["bash", "sh", "python3", "pwsh", "kubectl", "az", "aws", "terraform", "docker", "helm", "gcloud"]

# One round trip tells the OS, architecture and tools on PATH.
CAPABILITIES_SCRIPT = (
    'echo "os=$(uname -s)"; echo "arch=$(uname -m)"; echo "kernel=$(uname -r)"; '
    "echo \"bash=${BASH_VERSION:-$(bash -c 'echo $BASH_VERSION' 2>/dev/null)}\"; "
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
_relays: dict[tuple, Relay] = {}
_hosts: dict[tuple, _Host] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_connections_lock = threading.Lock()
REMOTE_HOME = ".reef-ssh-worker"  # apart from an installed agent's own ~/.reef-tentacle
RELAY_IDLE_SECONDS = 300  # the remote daemon leaves after this long with no client and no running script
# Prints the path of a Python the agent can run on (3.9+), or nothing: then the host runs Bash only.
# The interpreter itself (sys.executable), not a shim in front of it: the relay starts faster.
PYTHON_PROBE = (
    "for p in python3 python; do command -v $p >/dev/null 2>&1 && "
    "$p -c 'import sys; assert sys.version_info >= (3, 9); print(sys.executable)' 2>/dev/null && "
    "exit 0; done; true"
)
RELAY_MAIN = (
    "import os, sys; sys.path.insert(0, os.path.abspath(sys.argv[1])); "
    "from tentacle_agent.sshrelay import main; sys.exit(main(sys.argv[2:]))"
)


class _Host:
    """What one worker's host has: a Python for the agent (else Bash only) and the agent's path."""

    def __init__(self, python: str, agent_path: str):
        self.python, self.agent_path = python, agent_path


class SshTransport(EnvelopeTransport):
    """The agent's runner over a relay channel where the host has Python (scripts survive a dropped
    connection in the remote daemon); plain bash on a channel per script where it has not."""

    def __init__(self, worker: Worker, *, on_retry: RetryCallback | None = None):
        super().__init__(worker, on_retry=on_retry)

    # Connections -----------------------------------------------------------------------------------

    def _key(self) -> tuple:
        w = self.worker
        return (
            w.pk,
            w.host,
            w.port,
            w.fingerprint,
            w.account_id,
            w.account.password_encrypted if w.account else "",
            w.account.private_key_encrypted if w.account else "",
        )

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
            raise TrustError(
                f"The host key of {w.endpoint_uri} is {seen}, not the pinned {w.fingerprint}: "
                "refusing to connect (re-confirm the fingerprint if the host was rebuilt)."
            )
        if w.account is None:
            transport.close()
            raise TransportError(f"{w.name} has no account to sign in with.", retryable=False)
        secrets = account_secrets(w.account)
        try:
            if w.account.account_type == w.account.AccountType.SSH_KEY_PAIR:
                transport.auth_publickey(
                    w.account.username, _load_private_key(secrets["private_key"], secrets["passphrase"])
                )
            else:
                transport.auth_password(w.account.username, secrets["password"])
        except paramiko.AuthenticationException:
            transport.close()
            raise TransportError(
                f"{w.endpoint_uri} refused the credentials of account {w.account.name} (user {w.account.username}).",
                retryable=False,
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as error:
            transport.close()
            raise WorkerUnreachable(f"Signing in to {w.endpoint_uri} failed: {error}.") from None
        transport.set_keepalive(15)
        return transport

    def run(
        self, transport: paramiko.Transport, command: str, stdin: str | bytes = "", timeout: float = 300
    ) -> tuple[int, str, str]:
        """One command on its own channel, to its end: (exit code, stdout, stderr)."""
        try:
            channel = transport.open_session(timeout=self.timeout)
        except DROPPED as error:
            raise TransportError(
                f"{self.worker.endpoint_uri} refused a channel: {error or type(error).__name__}."
            ) from None
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
                    raise TransportError(
                        f"The command on {self.worker.endpoint_uri} did not finish within {timeout:.0f}s."
                    )
                elif channel.closed and not channel.exit_status_ready():
                    raise TransportError(f"{self.worker.endpoint_uri} closed the channel.")
                else:
                    time.sleep(0.005)
            return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        except DROPPED as error:
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

    def _relay(self) -> Relay:
        key = self._key()
        relay = _relays.get(key)
        if relay is not None and relay.alive:
            return relay
        if relay is not None and not relay.answered:
            _hosts.pop(key, None)  # it never worked: look again (the agent removed? Python replaced?)
        transport = self._session()
        host = self._host(transport)
        if host is None:
            raise TransportError(
                f"{self.worker.endpoint_uri} has no Python 3.9+: SSH workers without it run Bash "
                "scripts only, without packages.",
                retryable=False,
            )
        with self._lock():
            relay = _relays.get(key)
            if relay is not None and relay.alive:
                return relay
            try:
                channel = transport.open_session(timeout=self.timeout)
                # A home per agent build: a daemon of an older build never serves a newer one.
                # `tentacle ssh-relay`, started without site packages or the CLI's imports: a reconnect waits for it.
                channel.exec_command(
                    f"{host.python} -S -c {shlex.quote(RELAY_MAIN)} {host.agent_path} "
                    f"--home {host.agent_path.removesuffix('.pyz')} --idle-seconds {RELAY_IDLE_SECONDS}"
                )
            except DROPPED as error:
                raise TransportError(
                    f"{self.worker.endpoint_uri} refused a channel: {error or type(error).__name__}."
                ) from None
            relay = _relays[key] = Relay(channel, self.worker.endpoint_uri)
            return relay

    def exchange(self, envelope: dict, timeout: float) -> dict:
        for _ in range(2):
            relay = self._relay()
            try:
                return relay.request(envelope, timeout)
            except Stale:
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
            return self.with_retries("StartScript", lambda: BashScript.start(self, command, home=REMOTE_HOME))
        return super().start_script(command)

    def get_status(self, ticket: str, after_sequence: int = -1, wait: float = 0) -> ScriptStatus:
        script = BashScript.find(ticket)
        if script is not None:
            return script.status(after_sequence, wait)
        return super().get_status(ticket, after_sequence, wait)

    def cancel_script(self, ticket: str) -> ScriptStatus:
        script = BashScript.find(ticket)
        if script is not None:
            return script.cancel(self)
        return super().cancel_script(ticket)

    def complete_script(self, ticket: str) -> CompleteResult:
        script = BashScript.find(ticket)
        if script is not None:
            return script.complete(self)
        return super().complete_script(ticket)

    def has_package(self, sha256: str) -> bool:
        if self.bash_only():
            return False
        return super().has_package(sha256)

    def upload_package(self, sha256: str, file_name: str, data: bytes) -> None:
        if self.bash_only():
            raise TransportError(
                f"{self.worker.endpoint_uri} has no Python 3.9+: packages need the agent's runner.", retryable=False
            )
        super().upload_package(sha256, file_name, data)

    def _ensure_agent(self, transport: paramiko.Transport) -> str:
        """Upload the agent once per version (named by its hash), with pipelined SFTP writes."""
        data, sha256 = agent_bundle()
        path = f"{REMOTE_HOME}/reef-tentacle-{sha256[:16]}.pyz"
        try:
            sftp = transport.open_sftp_client()
        except paramiko.SSHException:  # a host without the SFTP subsystem: stream it through cat instead
            code, _, err = self.run(
                transport,
                f"umask 077; mkdir -p {REMOTE_HOME}; test -s {path} || "
                f"{{ cat > {path}.$$.part && mv {path}.$$.part {path}; }}",
                stdin=data,
                timeout=max(60, self.timeout),
            )
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
            # Each upload its own part: checks and steps starting at once upload in parallel, and a shared
            # part was renamed away under the others (FileNotFoundError).
            part = f"{path}.{secrets.token_hex(8)}.part"
            try:
                with sftp.open(part, "wb") as remote:
                    remote.set_pipelined(True)
                    for offset in range(0, len(data), 32768):
                        remote.write(data[offset : offset + 32768])
                sftp.posix_rename(part, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(part)
                raise
            return path
        finally:
            sftp.close()


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
    return {
        "OperatingSystem": {"Linux": "Linux", "Darwin": "macOS"}.get(values.get("os", ""), values.get("os", "Unknown")),
        "Architecture": values.get("arch", "Unknown"),
        "Kernel": values.get("kernel", ""),
        "Shells": shells,
        "ShellVersion": values.get("bash", ""),
        "Tools": {k: v for k, v in tools.items() if k not in shells},
        "AgentVersion": None,
        "Transport": "ssh",
    }
