"""Sockets of the polling endpoint: a pyOpenSSL connection as the files http.server reads and writes, timeouts,
and a log line said at most once a minute."""

from __future__ import annotations

import io
import select
import socket
import struct
import time

from OpenSSL import SSL

IO_TIMEOUT = 15  # seconds any one read or write of a request may stall


class TlsSocketIO(io.RawIOBase):
    """A readable file over a pyOpenSSL connection, for http.server."""

    def __init__(self, connection: SSL.Connection):
        self.connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """WantRead means no TLS record is complete yet (or the socket's timeout passed), not end of
        stream: wait for the socket to be readable, with the I/O timeout, and try again."""
        while True:
            try:
                return self.connection.recv_into(buffer)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return 0
            except SSL.WantReadError:
                readable, _, _ = select.select([self.connection.fileno()], [], [], IO_TIMEOUT)
                if not readable:
                    raise TimeoutError(f"no data for {IO_TIMEOUT}s") from None


class TlsWriter(io.RawIOBase):
    def __init__(self, connection: SSL.Connection):
        self.connection = connection

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.connection.sendall(bytes(data))
        return len(data)


def set_timeouts(sock: socket.socket, seconds: int) -> None:
    timeval = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


_last_said: dict[str, float] = {}


def rarely(say, message: str, *args) -> None:
    """At most one such line a minute: a flood must not become a flood of log lines."""
    now = time.monotonic()
    if now - _last_said.get(message, -1e9) >= 60:
        _last_said[message] = now
        say(message, *args)
