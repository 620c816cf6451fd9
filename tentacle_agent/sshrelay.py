"""`tentacle ssh-relay --home DIR`: the script service for SSH workers, surviving dropped connections.

The server's SSH transport runs this on a channel. It:
1. connects to the home's daemon (a unix socket in DIR, which is 0700), starting it if absent: a double
   fork and setsid, so the daemon belongs to no SSH session and outlives the connection;
2. relays bytes: stdin to the daemon, the daemon's answers to stdout (one JSON envelope per line,
   requests answered concurrently, out of order, each with its Id).
The daemon keeps scripts running when a connection drops, so the server's next call (a new channel,
perhaps a new connection) carries on with the same ticket. It exits after `idle_seconds` with no
client and no running script, cancelling nothing that still runs and removing leftover work folders.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

SOCKET_NAME = "relay.sock"
LOCK_NAME = "relay.lock"
MAX_LINE = 512 * 1024 * 1024
DEFAULT_IDLE_SECONDS = 300
START_TIMEOUT = 15


def main(argv: list) -> int:
    """`python -S -c '…main(sys.argv[2:])' PYZ --home DIR [--idle-seconds N]`: the SSH transport's fast
    path (no site packages, no CLI imports), the same as `tentacle ssh-relay`."""
    import argparse  # the relay's fast path imports only what it uses

    parser = argparse.ArgumentParser(prog="ssh-relay")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    args = parser.parse_args(argv)
    return relay(args.home, args.idle_seconds)


def relay(home: Path, idle_seconds: float = DEFAULT_IDLE_SECONDS) -> int:
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    path = home / SOCKET_NAME
    if len(str(path).encode()) > 100:
        print(f"ssh-relay: {path} is too long for a unix socket; use a shorter --home.", file=sys.stderr)
        return 2
    connection = _connect(path)
    deadline = time.monotonic() + START_TIMEOUT
    spawned = 0.0
    while connection is None and time.monotonic() < deadline:
        if time.monotonic() - spawned > 1:  # again if a daemon that was just leaving held the lock
            _spawn_daemon(home, idle_seconds)
            spawned = time.monotonic()
        time.sleep(0.02)
        connection = _connect(path)
    if connection is None:
        print(f"ssh-relay: the daemon in {home} did not start (see {home / 'relay.log'}).", file=sys.stderr)
        return 1
    threading.Thread(target=_pump_stdin, args=(connection,), daemon=True).start()
    out = sys.stdout.fileno()
    try:
        while True:
            chunk = connection.recv(1 << 16)
            if not chunk:
                return 0
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
    except OSError:  # the SSH channel went away: the daemon carries on without us
        return 0


def _pump_stdin(connection: socket.socket) -> None:
    try:
        while True:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                break
            connection.sendall(chunk)
    except OSError:
        pass
    # End of input: the server closed the channel. Leave, without touching the daemon's scripts.
    os._exit(0)


def _connect(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
        return client
    except OSError:
        client.close()
        return None


def _spawn_daemon(home: Path, idle_seconds: float) -> None:
    """Double fork: the daemon is re-parented to init, in its own session, with no tie to this channel."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        import tentacle_agent.service  # noqa: F401 - before leaving the folder a relative sys.path entry names

        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(str(home / "relay.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        serve(home, idle_seconds)
    except BaseException as error:  # noqa: BLE001 - a daemon has nobody to raise to
        try:
            os.write(2, f"ssh-relay daemon stopped: {error!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(0)


class _Daemon:
    def __init__(self, home: Path, idle_seconds: float):
        from tentacle_agent.service import ScriptService  # only the daemon needs it: the relay starts fast

        self.home = home
        self.idle_seconds = idle_seconds
        self.service = ScriptService(home)
        self.clients = 0
        self.last_active = time.monotonic()
        self.lock = threading.Lock()

    def busy(self) -> bool:
        with self.lock:
            if self.clients:
                return True
        return any(script.state != "Complete" for script in list(self.service.runner.scripts.values()))

    def serve_client(self, connection: socket.socket) -> None:
        with self.lock:
            self.clients += 1
        write_lock = threading.Lock()
        reader: BinaryIO = connection.makefile("rb")

        def answer(line: bytes) -> None:
            try:
                envelope = json.loads(line)
            except ValueError:
                envelope = None
            response = (
                self.service.handle(envelope)
                if envelope is not None
                else {"Id": None, "Error": {"Kind": "BadRequest", "Message": "Each line must be one JSON envelope."}}
            )
            data = json.dumps(response).encode() + b"\n"
            with write_lock:
                try:
                    connection.sendall(data)
                except OSError:
                    pass  # that client left; the script's state stays here for the next one
            self.last_active = time.monotonic()

        try:
            for line in iter(lambda: reader.readline(MAX_LINE), b""):
                if line.strip():
                    threading.Thread(target=answer, args=(line,), daemon=True).start()
        except OSError:
            pass
        finally:
            with self.lock:
                self.clients -= 1
                self.last_active = time.monotonic()
            reader.close()
            connection.close()

    def clean_up(self) -> None:
        runner = self.service.runner
        runner.cancel_all()
        for script in list(runner.scripts.values()):
            shutil.rmtree(script.work, ignore_errors=True)


def serve(home: Path, idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:
    """One daemon per home (a lock file decides), until idle for `idle_seconds`."""
    lock = open(home / LOCK_NAME, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another daemon serves this home
    path = home / SOCKET_NAME
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    daemon = _Daemon(home, idle_seconds)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o077)
    try:
        server.bind(str(path))
    finally:
        os.umask(previous)
    server.listen(64)
    server.settimeout(min(5.0, max(0.5, idle_seconds / 4)))
    try:
        while True:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                if not daemon.busy() and time.monotonic() - daemon.last_active > idle_seconds:
                    return
                continue
            connection.settimeout(None)
            daemon.last_active = time.monotonic()
            threading.Thread(target=daemon.serve_client, args=(connection,), daemon=True).start()
    finally:
        server.close()
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        daemon.clean_up()
        lock.close()
