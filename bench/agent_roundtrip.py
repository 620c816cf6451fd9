"""bench/agent_roundtrip.py: how fast a script starts and speaks on a worker, and how many idle polling
agents one server node holds.

In one run, on loopback, against a throwaway database:
1. baseline: a bare mutual-TLS HTTPS request to a listening agent;
2. StartScript + the first log line of `echo hi` through the listening and the polling transport;
   and over SSH (a reused connection, the relay daemon on a real sshd on loopback), against the
   listening figure (bar: ≤ 2×), plus what one reconnect adds (a dropped connection, the next call);
3. BENCH_AGENTS idle polling agents (default 500) connected to one polling endpoint: how many are
   seen polling, the endpoint's memory and the agents' memory.

    python bench/agent_roundtrip.py            # BENCH_AGENTS=50 for a quick run
"""

import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("REEF_VAR_DIR", tempfile.mkdtemp(prefix="reef-bench-"))
os.environ.setdefault("REEF_HTTPS", "0")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import get_runner  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
AGENTS = int(os.environ.get("BENCH_AGENTS", "500"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def fast_instance(home: Path, mode: str, server_pem: str, comms: str | None = None, port: int | None = None) -> dict:
    """An agent instance with a certificate made by `cryptography` (fast), configured like the CLI would."""
    import datetime
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    home.mkdir(parents=True)
    (home / "tentacle.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (home / "tentacle.key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    (home / "trusted-server.pem").write_text(server_pem)
    from infrastructure.services.certificates import current_server_certificate

    config = {
        "Mode": mode,
        "Port": port,
        "ListenIp": "127.0.0.1",
        "Subscription": secrets.token_hex(10),
        "Thumbprint": hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper(),
        "TrustedThumbprint": current_server_certificate().thumbprint,
        "ServerCommsAddress": comms,
        "Proxy": None,
    }
    (home / "tentacle.json").write_text(json.dumps(config))
    return config


def start_agent(home: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tentacle_agent", "run", "--home", str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("Reef tentacle"):
            break
    return process


def percentile_of(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def first_line_ms(transport) -> float:
    from infrastructure.transports import new_ticket

    started = time.perf_counter()
    ticket = transport.start_script({"Ticket": new_ticket(), "ScriptBody": "echo hi", "Syntax": "Bash"})
    status = transport.get_status(ticket, -1, 10)
    elapsed = (time.perf_counter() - started) * 1000
    assert status["Logs"][0]["Text"] == "hi", status
    transport.complete_script(ticket)
    return elapsed


def ssh_figures(space, pool, work: Path, processes: list) -> tuple[list[float], list[float]]:
    """(first line over a reused connection, first line right after the connection was dropped)."""
    from infrastructure.services import accounts
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from infrastructure.transports import ssh
    from tests.infrastructure.sshd import start_sshd

    server = start_sshd(work / "sshd")
    processes.append(server.process)
    ssh.REMOTE_HOME = tempfile.mkdtemp(prefix="reef-bench-ssh-")
    ssh.RELAY_IDLE_SECONDS = 30
    account = accounts.save_account(
        actor=None,
        space=space,
        name="bench key",
        account_type="SshKeyPair",
        username=server.username,
        private_key=server.client_private_key,
    )
    worker = register_worker(
        actor=None,
        space=space,
        spec=WorkerSpec(
            name="ssh",
            worker_pools=[pool],
            endpoint=Endpoint(
                communication_style="Ssh",
                host=server.host,
                port=server.port,
                fingerprint=ssh.discover_host_key(server.host, server.port)[1],
                account=account,
            ),
        ),
    )
    from infrastructure.models import Worker

    worker = Worker.objects.select_related("machine_policy", "account").get(pk=worker.pk)
    transport = ssh.SshTransport(worker)
    first_line_ms(transport)  # connect, upload the agent, start the relay daemon: once per worker
    reused = [first_line_ms(transport) for _ in range(ROUNDS)]
    reconnect = []
    for _ in range(max(5, ROUNDS // 3)):
        for connection in list(ssh._connections.values()):
            connection.close()  # as when the network dropped it: the next call reconnects
        reconnect.append(first_line_ms(transport))
    return reused, reconnect


def main() -> None:
    from infrastructure.models import Worker, WorkerPool
    from infrastructure.services.certificates import current_server_certificate
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from infrastructure.transports.listening import ListeningTransport, server_tls_context
    from infrastructure.transports.polling import PollingTransport
    from portal.models import Space
    from portal.redis import redis_client

    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    processes: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="reef-bench-agents-"))
    try:
        space = Space.objects.default()
        pool = WorkerPool.objects.get(space=space, is_default=True)
        server_pem = current_server_certificate().certificate_pem
        env = {**os.environ, "DATABASE_URL": database_url()}

        def register(name, style, uri, thumbprint):
            return register_worker(
                actor=None,
                space=space,
                spec=WorkerSpec(
                    name=name,
                    worker_pools=[pool],
                    endpoint=Endpoint(communication_style=style, uri=uri, thumbprint=thumbprint),
                ),
            )

        # Listening agent and the bare-HTTPS baseline.
        port = free_port()
        config = fast_instance(work / "listening", "listening", server_pem, port=port)
        processes.append(start_agent(work / "listening"))
        listening = register("listening", "TentaclePassive", f"https://127.0.0.1:{port}/", config["Thumbprint"])
        baseline = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=server_tls_context(), timeout=10)
            connection.request("GET", "/")
            connection.getresponse().read()
            connection.close()
            baseline.append((time.perf_counter() - started) * 1000)
        transport = ListeningTransport(listening)
        listening_ms = [first_line_ms(transport) for _ in range(ROUNDS)]

        # Polling endpoint and one polling agent.
        polling_port = free_port()
        endpoint = subprocess.Popen(
            [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(polling_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(endpoint)
        endpoint.stdout.readline()
        comms = f"https://127.0.0.1:{polling_port}/"
        config = fast_instance(work / "polling", "polling", server_pem, comms=comms)
        polling = register("polling", "TentacleActive", f"poll://{config['Subscription']}/", config["Thumbprint"])
        processes.append(start_agent(work / "polling"))
        transport = PollingTransport(Worker.objects.get(pk=polling.pk))
        polling_ms = [first_line_ms(transport) for _ in range(ROUNDS)]

        ssh_ms, ssh_reconnect_ms = ssh_figures(space, pool, work, processes)

        # Idle polling agents.
        endpoint_before = rss_mb(endpoint.pid)
        subscriptions = []
        for n in range(AGENTS):
            config = fast_instance(work / f"idle-{n}", "polling", server_pem, comms=comms)
            register(f"idle-{n}", "TentacleActive", f"poll://{config['Subscription']}/", config["Thumbprint"])
            subscriptions.append(config["Subscription"])
        idle = [
            subprocess.Popen(
                [sys.executable, "-m", "tentacle_agent", "run", "--home", str(work / f"idle-{n}")],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(AGENTS)
        ]
        processes.extend(idle)
        client = redis_client()
        deadline, seen = time.monotonic() + 120 + AGENTS * 0.2, 0
        while time.monotonic() < deadline:
            seen = sum(1 for sub in subscriptions if client.exists(f"reef:poll:seen:{sub}"))
            if seen == AGENTS:
                break
            time.sleep(1)
        time.sleep(5)  # hold them: every agent is now parked in a long poll
        alive = sum(1 for p in idle if p.poll() is None)
        agents_rss = sum(rss_mb(p.pid) for p in idle if p.poll() is None)
        print(f"baseline bare mTLS request: median {statistics.median(baseline):.2f} ms")
        print(
            f"listening start_script + first line: median {statistics.median(listening_ms):.2f} ms, "
            f"p95 {sorted(listening_ms)[int(len(listening_ms) * 0.95) - 1]:.2f} ms"
        )
        print(
            f"polling start_script + first line: median {statistics.median(polling_ms):.2f} ms, "
            f"p95 {sorted(polling_ms)[int(len(polling_ms) * 0.95) - 1]:.2f} ms"
        )
        print(
            f"idle polling agents held: {seen} of {AGENTS} polling, {alive} alive; endpoint RSS "
            f"{endpoint_before:.0f} → {rss_mb(endpoint.pid):.0f} MB; agents {agents_rss / max(alive, 1):.1f} MB each"
        )
        ssh_median, listening_median = statistics.median(ssh_ms), statistics.median(listening_ms)
        print(
            f"ssh start_script + first line (reused connection): median {ssh_median:.2f} ms, "
            f"p95 {sorted(ssh_ms)[int(len(ssh_ms) * 0.95) - 1]:.2f} ms"
        )
        print(
            f"ssh_first_line: {ssh_median:.2f} ms ({listening_median:.2f} ms listening, "
            f"ratio {ssh_median / listening_median:.2f}; bar ≤ 2)"
        )
        overhead = statistics.median(ssh_reconnect_ms) - ssh_median
        print(
            f"ssh_reconnect_overhead: {overhead:.2f} ms ({ssh_median:.2f} ms reused, ratio "
            f"{statistics.median(ssh_reconnect_ms) / ssh_median:.2f})"
        )
        ratio = statistics.median(polling_ms) / statistics.median(baseline)
        print(
            f"agent_roundtrip: {statistics.median(polling_ms):.2f} ms "
            f"({statistics.median(baseline):.2f} ms, ratio {ratio:.1f})"
        )
    finally:
        stop(processes)
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
