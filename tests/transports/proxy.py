"""A loopback TCP proxy for fault tests: forwards bytes both ways, and on command cuts every connection
(refusing new ones for a while) or stalls one direction (holding its bytes until released or cut).

    proxy = TcpProxy(("127.0.0.1", agent_port))   # listen on proxy.port
    proxy.cut(3)                  # a 3-second network cut: open connections die, new ones are refused
    proxy.stall("to_server")      # hold what the client sends (the answers of a polling agent)
    proxy.stall("to_client")      # hold what the server sends (the answers of a listening agent)
    proxy.cut()                   # …and cut: the held bytes are lost
"""

from __future__ import annotations

import socket
import threading
import time

DIRECTIONS = ("to_server", "to_client")


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections: list[tuple[socket.socket, socket.socket]] = []
        self.flowing = {direction: threading.Event() for direction in DIRECTIONS}
        for event in self.flowing.values():
            event.set()
        self.refusing_until = 0.0
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    # Controls -------------------------------------------------------------------------------------

    def cut(self, seconds: float = 0) -> None:
        """Close every open connection now; refuse (accept and close at once) new ones for `seconds`."""
        with self.lock:
            self.refusing_until = time.monotonic() + seconds
            connections, self.connections = self.connections, []
        for event in self.flowing.values():
            event.set()
        for pair in connections:
            for sock in pair:
                _close(sock)

    def stall(self, direction: str) -> None:
        self.flowing[direction].clear()

    def release(self) -> None:
        for event in self.flowing.values():
            event.set()

    def open_connections(self) -> int:
        with self.lock:
            return len(self.connections)

    def close(self) -> None:
        self.closed = True
        _close(self.listener)
        self.cut()

    # Plumbing -------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refusing_until:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self.lock:
                self.accepted += 1
                self.connections.append((client, server))
            for source, target, direction in ((client, server, "to_server"), (server, client, "to_client")):
                threading.Thread(
                    target=self._pump, args=(source, target, direction, (client, server)), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, direction: str, pair) -> None:
        flowing = self.flowing[direction]
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while not flowing.wait(0.05):
                    if not self._is_open(pair):
                        return  # cut while held: these bytes are lost, as on a real cut
                if not self._is_open(pair):
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                if pair in self.connections:
                    self.connections.remove(pair)
            for sock in pair:
                _close(sock)

    def _is_open(self, pair) -> bool:
        with self.lock:
            return pair in self.connections


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
