"""A polling agent reaches the server through an HTTP proxy (CONNECT), as many corporate networks demand."""

import select
import socket
import threading

import pytest

from infrastructure.models import Worker
from infrastructure.services import health
from portal.services.api_keys import create_api_key
from tests.agent.harness import Agent, tentacle

pytestmark = pytest.mark.e2e


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records where it tunnelled to."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.tunnels: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                return client.close()
            request += chunk
        method, target, _ = request.split(b"\r\n")[0].decode().split(" ")
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return client.close()
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.tunnels.append(target)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [client, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 120)
            if not readable:
                break
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:  # a reset ends the tunnel like a close does
                    data = b""
                if not data:
                    client.close()
                    upstream.close()
                    return
                (upstream if sock is client else client).sendall(data)

    def close(self):
        self.server.close()


def test_a_polling_agent_works_through_an_http_proxy(live_reef, polling_endpoint, administrator, tmp_path, space):
    proxy = ConnectProxy()
    key = create_api_key(actor=administrator, user=administrator, purpose="proxy")[1]
    agent = Agent(tmp_path / "agent").create()
    assert (
        agent.register(live_reef, key, polling=True, polling_address=polling_endpoint, name="behind-proxy").returncode
        == 0
    )
    tentacle(agent.home, "configure", "--proxy", f"http://127.0.0.1:{proxy.port}")
    agent.start()
    try:
        worker = Worker.objects.get(name="behind-proxy")
        assert health.check_worker_health(worker.pk).health_status == "Healthy"
        assert proxy.tunnels and all(t == polling_endpoint.split("//")[1].rstrip("/") for t in proxy.tunnels)
    finally:
        agent.stop()
        proxy.close()
