"""The four transports, really running, for one contract suite: the built-in worker, a listening agent,
a polling agent (through the polling endpoint) and an SSH worker (a real sshd). Every networked one sits
behind a loopback TCP proxy (tests/transports/proxy.py) so tests can cut or stall its connection.

Module-scoped: agents, sshd and the endpoint start once per test module, and their rows live in the
test database (committed) for the module's length, removed at its end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.agent.harness import Agent, free_port, tentacle, wait_until
from tests.e2e.conftest import ROOT, server_env
from tests.infrastructure.sshd import SSHD, SshServer, start_sshd
from tests.transports.proxy import TcpProxy

KINDS = ["builtin", "listening", "polling", "ssh"]
NETWORKED = ["listening", "polling", "ssh"]


@dataclass
class Kind:
    """One transport under test: `service()` makes a fresh transport object, as the orchestrator does."""

    name: str
    make: Callable[..., object]
    worker: object = None
    proxy: TcpProxy | None = None
    restart: Callable[[], None] | None = None
    retries: list = field(default_factory=list)
    work_root: Path | None = None  # where the worker keeps its scripts' work folders

    def service(self):
        return self.make(on_retry=self.retries.append)


def restart_sshd(server: SshServer, folder: Path) -> None:
    """Stop sshd and every connection it serves (their processes are its children), start it again."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server.process.pid:
                children.append(int(entry.name))
    server.process.terminate()
    server.process.wait(10)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def answering() -> bool:
        try:
            with socket.create_connection((server.host, server.port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(answering, timeout=10, interval=0.05)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Everything the four kinds need, started once for the module."""
    from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
    from infrastructure.services import accounts
    from infrastructure.services.certificates import current_server_certificate
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from infrastructure.transports import ssh
    from infrastructure.transports.builtin import BuiltinTransport
    from infrastructure.transports.listening import ListeningTransport
    from infrastructure.transports.polling import PollingTransport
    from infrastructure.transports.ssh import SshTransport, discover_host_key
    from portal.services.spaces import ensure_default_space

    blocker = django_db_blocker.unblock()
    blocker.__enter__()
    folder = tmp_path_factory.mktemp("transports")
    stoppers: list[Callable[[], None]] = []
    created_workers: list[int] = []
    suffix = os.urandom(4).hex()
    saved = (ssh.REMOTE_HOME, ssh.RELAY_IDLE_SECONDS)
    try:
        space = ensure_default_space()
        pool = WorkerPool.objects.get(space=space, is_default=True)
        policy = MachinePolicy.objects.create(
            space=space,
            name=f"Contract {suffix}",
            connect_timeout=5,
            retry_count=5,
            retry_wait=1,
            polling_request_queue_timeout=10,
        )
        certificate = current_server_certificate()
        server_pem = folder / "server.pem"
        server_pem.write_text(certificate.certificate_pem)

        def load(worker_id: int) -> Worker:
            return Worker.objects.select_related("machine_policy", "account").get(pk=worker_id)

        def register(name: str, endpoint: Endpoint) -> Worker:
            worker = register_worker(
                actor=None,
                space=space,
                spec=WorkerSpec(name=f"{name}-{suffix}", worker_pools=[pool], machine_policy=policy, endpoint=endpoint),
            )
            created_workers.append(worker.pk)
            return load(worker.pk)

        from django.conf import settings

        from infrastructure.distribution import agent_bundle

        kinds: dict[str, Kind] = {
            "builtin": Kind(
                "builtin",
                lambda on_retry=None: BuiltinTransport(on_retry=on_retry),
                work_root=Path(settings.VAR_DIR) / "builtin-worker" / "Work",
            )
        }

        # Listening: an agent on its own port, the server talking to it through a proxy.
        listening = Agent(folder / "listening").create(listening_port=free_port())
        tentacle(listening.home, "configure", "--trust-pem", str(server_pem))
        listening.start()
        stoppers.append(listening.stop)
        proxy = TcpProxy(("127.0.0.1", listening.port))
        stoppers.append(proxy.close)
        worker = register(
            "listening",
            Endpoint(
                communication_style="TentaclePassive",
                uri=f"https://127.0.0.1:{proxy.port}/",
                thumbprint=listening.thumbprint,
            ),
        )

        def restart_listening(agent=listening) -> None:
            agent.stop()
            agent.start()

        kinds["listening"] = Kind(
            "listening",
            lambda on_retry=None, w=worker: ListeningTransport(w, on_retry=on_retry),
            worker,
            proxy,
            restart_listening,
            work_root=listening.home / "Work",
        )

        # Polling: the endpoint, and an agent that reaches it through a proxy.
        port = free_port()
        endpoint = subprocess.Popen(
            [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=server_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert "listening" in (endpoint.stdout.readline() if endpoint.stdout else "")
        threading.Thread(target=lambda: [None for _ in endpoint.stdout], daemon=True).start()  # type: ignore[union-attr]

        def stop_endpoint() -> None:
            endpoint.terminate()
            endpoint.wait(10)

        stoppers.append(stop_endpoint)
        proxy = TcpProxy(("127.0.0.1", port))
        stoppers.append(proxy.close)
        polling = Agent(folder / "polling").create()
        tentacle(
            polling.home,
            "configure",
            "--polling",
            "--server-comms-address",
            f"https://127.0.0.1:{proxy.port}/",
            "--trust-pem",
            str(server_pem),
        )
        subscription = json.loads((polling.home / "tentacle.json").read_text())["Subscription"]
        worker = register(
            "polling",
            Endpoint(
                communication_style="TentacleActive", uri=f"poll://{subscription}/", thumbprint=polling.thumbprint
            ),
        )
        polling.start()
        stoppers.append(polling.stop)

        def restart_polling(agent=polling) -> None:
            agent.stop()
            agent.start()

        kinds["polling"] = Kind(
            "polling",
            lambda on_retry=None, w=worker: PollingTransport(w, on_retry=on_retry),
            worker,
            proxy,
            restart_polling,
            work_root=polling.home / "Work",
        )

        # SSH: a real sshd, reached through a proxy; the remote home in a short temporary folder.
        ssh.REMOTE_HOME = tempfile.mkdtemp(prefix="reef-ssh-")
        ssh.RELAY_IDLE_SECONDS = 20
        sshd_folder = folder / "sshd"
        server = start_sshd(sshd_folder)
        stoppers.append(server.stop)
        proxy = TcpProxy((server.host, server.port))
        stoppers.append(proxy.close)
        account = accounts.save_account(
            actor=None,
            space=space,
            name=f"ssh key {suffix}",
            account_type="SshKeyPair",
            username=server.username,
            private_key=server.client_private_key,
        )
        _, fingerprint = discover_host_key(server.host, server.port)
        worker = register(
            "ssh",
            Endpoint(
                communication_style="Ssh", host="127.0.0.1", port=proxy.port, fingerprint=fingerprint, account=account
            ),
        )
        kinds["ssh"] = Kind(
            "ssh",
            lambda on_retry=None, w=worker: SshTransport(w, on_retry=on_retry),
            worker,
            proxy,
            lambda: restart_sshd(server, sshd_folder),
            work_root=Path(ssh.REMOTE_HOME) / f"reef-tentacle-{agent_bundle()[1][:16]}" / "Work",
        )
        kinds["ssh"].sshd = server  # type: ignore[attr-defined]
        yield kinds
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the rest regardless
                pass
        ssh.REMOTE_HOME, ssh.RELAY_IDLE_SECONDS = saved
        Worker.objects.filter(pk__in=created_workers).delete()
        Account.objects.filter(name__endswith=suffix).delete()
        MachinePolicy.objects.filter(name=f"Contract {suffix}").delete()
        from django.db import connections

        connections.close_all()
        blocker.__exit__(None, None, None)


@pytest.fixture(params=KINDS)
def kind(request, world) -> Kind:
    chosen = world[request.param]
    chosen.retries.clear()
    if chosen.proxy is not None:
        chosen.proxy.release()
    return chosen


@pytest.fixture(params=NETWORKED)
def networked(request, world) -> Kind:
    chosen = world[request.param]
    chosen.retries.clear()
    chosen.proxy.release()
    return chosen


def in_threads(function, count: int, timeout: float = 120) -> dict:
    """Run function(n) for n in range(count) at once; {n: result or exception}. Each thread closes
    its own database connection, as the orchestrator's do."""
    results: dict = {}

    def run(n: int) -> None:
        from django.db import connection

        try:
            results[n] = function(n)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            results[n] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    return results
