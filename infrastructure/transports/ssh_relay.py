"""The relay channel: one SSH channel running the agent's `ssh-relay` carries every call to a worker whose host has
Python, answered out of order by Id."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import paramiko

from infrastructure.transports import TransportError

MAX_ANSWER = 64 * 1024 * 1024  # as the listening transport's
DROPPED = (socket.timeout, OSError, EOFError, paramiko.SSHException)  # what a dropped connection raises


class Relay:
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
            except DROPPED as error:
                self.fail(f"{self.where} closed the script session ({error or type(error).__name__})")
                raise Stale() from None
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
                    del buffer[: newline + 1]
                    self._deliver(line)
                    newline = buffer.find(b"\n")
                if len(buffer) > MAX_ANSWER:
                    reason += f" after sending an answer larger than {MAX_ANSWER} bytes"
                    break
        except DROPPED as error:
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


class Stale(Exception):
    """A cached relay channel that turned out dead before our request went out: safe to resend once."""
