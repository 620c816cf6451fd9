"""SSH workers: paramiko, the host key pinned by its SHA-256 fingerprint, bash only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import socket
import threading
import time

import paramiko

from infrastructure.models import Worker
from infrastructure.services.accounts import account_secrets
from infrastructure.transports import TransportError
from infrastructure.transports.envelope import EnvelopeTransport

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
_connections_lock = threading.Lock()
REMOTE_HOME = ".reef-ssh-worker"  # apart from an installed agent's own ~/.reef-tentacle


class SshTransport(EnvelopeTransport):
    def __init__(self, worker: Worker):
        super().__init__(worker)
        self._channel: paramiko.Channel | None = None
        self._buffer = b""

    def _session(self) -> paramiko.Transport:
        w = self.worker
        key = (w.pk, w.host, w.port, w.fingerprint, w.account_id, w.account.password_encrypted if w.account else "",
               w.account.private_key_encrypted if w.account else "")
        with _connections_lock:
            cached = _connections.get(key)
            if cached is not None and cached.is_active():
                return cached
            transport = self._connect()
            _connections[key] = transport
            return transport

    def _connect(self) -> paramiko.Transport:
        w = self.worker
        transport = _connect_transport(w.host, w.port or 22, self.timeout)
        seen = host_key_fingerprint(transport.get_remote_server_key())
        if seen != w.fingerprint:
            transport.close()
            raise TransportError(f"The host key of {w.endpoint_uri} is {seen}, not the pinned {w.fingerprint}: "
                                 "refusing to connect (re-confirm the fingerprint if the host was rebuilt).")
        if w.account is None:
            transport.close()
            raise TransportError(f"{w.name} has no account to sign in with.")
        secrets = account_secrets(w.account)
        try:
            if w.account.account_type == w.account.AccountType.SSH_KEY_PAIR:
                transport.auth_publickey(w.account.username, _load_private_key(secrets["private_key"], secrets["passphrase"]))
            else:
                transport.auth_password(w.account.username, secrets["password"])
        except paramiko.AuthenticationException:
            transport.close()
            raise TransportError(f"{w.endpoint_uri} refused the credentials of account {w.account.name} "
                                 f"(user {w.account.username}).") from None
        except (paramiko.SSHException, OSError) as error:
            transport.close()
            raise TransportError(f"Signing in to {w.endpoint_uri} failed: {error}.") from None
        return transport

    def run(self, transport: paramiko.Transport, command: str, stdin: str | bytes = "", timeout: float = 300) -> tuple[int, str, str]:
        channel = transport.open_session(timeout=self.timeout)
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
                else:
                    time.sleep(0.01)
            return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        except socket.timeout:
            raise TransportError(f"{self.worker.endpoint_uri} stopped answering.") from None
        finally:
            channel.close()

    def health(self, script: str = "", script_timeout: float = 300) -> dict:
        transport = self._session()
        _, out, _ = self.run(transport, "sh -s", CAPABILITIES_SCRIPT, timeout=self.timeout)
        capabilities = _parse_capabilities(out)
        result = {"Capabilities": capabilities, "ScriptExitCode": None, "ScriptOutput": ""}
        if script.strip():
            if "bash" not in capabilities["Shells"]:
                raise TransportError(f"{self.worker.endpoint_uri} has no bash to run the health check script.")
            code, sout, serr = self.run(transport, "bash -s", HEALTH_BOOTSTRAP + script, timeout=script_timeout)
            result.update(ScriptExitCode=code, ScriptOutput=sout + serr)
        return result

    # Scripts: the agent's runner over an SSH channel where the host has Python, plain bash otherwise.

    def run_script(self, body: str, syntax: str = "Bash", timeout: float = 300):
        transport = self._session()
        _, python, _ = self.run(transport, "command -v python3 || true", timeout=self.timeout)
        python = python.strip()
        if not python:
            if syntax != "Bash":
                raise TransportError(f"{self.worker.endpoint_uri} has no Python: SSH workers without it run Bash only.")
            code, out, err = self.run(transport, "bash -s", body, timeout=timeout)
            lines = [{"Sequence": n, "Stream": stream, "Category": "Info" if stream == "stdout" else "Error", "Text": text}
                     for n, (stream, text) in enumerate([("stdout", t) for t in out.splitlines()] + [("stderr", t) for t in err.splitlines()])]
            return code, lines
        path = self._ensure_agent(transport)
        self._channel = transport.open_session(timeout=self.timeout)
        self._channel.exec_command(f"{python} {path} stdio --home {REMOTE_HOME}/ssh")
        try:
            return super().run_script(body, syntax, timeout)
        finally:
            self._channel.close()  # end of input: the remote runner cancels anything still running
            self._channel, self._buffer = None, b""

    def exchange(self, envelope: dict, timeout: float) -> dict:
        if self._channel is None:
            raise TransportError(f"{self.worker.name}: no script session is open.")
        try:
            self._channel.settimeout(timeout)
            self._channel.sendall(json.dumps(envelope).encode() + b"\n")
            while b"\n" not in self._buffer:
                chunk = self._channel.recv(65536)
                if not chunk:
                    raise TransportError(f"{self.worker.endpoint_uri} closed the script session.")
                self._buffer += chunk
        except (socket.timeout, OSError, paramiko.SSHException) as error:
            raise TransportError(f"{self.worker.endpoint_uri} stopped answering: {error or 'timed out'}.") from None
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise TransportError(f"{self.worker.endpoint_uri} sent something that is not the script service's answer.") from None

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


def _parse_capabilities(out: str) -> dict:
    values, tools = {}, {}
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
