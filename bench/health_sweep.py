"""bench/health_sweep.py: health checks at fleet scale.

In one run, on loopback, against a throwaway database and the real polling endpoint:
1. BENCH_WORKERS registered polling workers (default 1,000): BENCH_LIVE of them (default 200) are live
   agent processes, the rest were never started.
2. Idle baseline: the first-line latency of a deployment (one step on a separate live worker), on a
   node doing nothing else.
3. Every worker is made due and Unknown at once; the sweep runs as Celery beat runs it (every 5 s,
   one sweep per Celery process, two processes as on a 2-core node), while the polling endpoint's own
   liveness thread does its part. Measured: the time until every dead worker is Unavailable and every
   live one Healthy, the longest one sweep held its Celery process, and the same deployment's
   first-line latency started during the sweep.

Bars (issue 12): the sweep settles within 2 × the policy's connect timeout + one check of a live
agent; a deployment during the sweep starts within 1.5 × the idle figure.

    python bench/health_sweep.py            # BENCH_LIVE=50 BENCH_WORKERS=300 for a quick run
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
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

from bench.agent_roundtrip import database_url, fast_instance, free_port, stop  # noqa: E402

WORKERS = int(os.environ.get("BENCH_WORKERS", "1000"))
LIVE = int(os.environ.get("BENCH_LIVE", "200"))
CONNECT_TIMEOUT = int(os.environ.get("BENCH_CONNECT_TIMEOUT", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BEAT_SECONDS = 5
CELERY_PROCESSES = 2


CELERY_PROCESS = """
import os, signal, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()
from infrastructure.services import health
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
every = float(os.environ["BENCH_BEAT_SECONDS"])
while not stopping:
    began = time.monotonic()
    health.run_due_health_checks()
    print("held", time.monotonic() - began, flush=True)
    time.sleep(max(0.0, every - (time.monotonic() - began)))
"""


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"gave up waiting for {what}")


def first_line_seconds(administrator, project, environment) -> float:
    """Deploy, run the task as the task runner would, and time the first script line's arrival."""
    from deployments.services import deploy
    from deployments.services.orchestrator import run_server_task
    from servertasks.models import TaskLogLine

    release = deploy.create_release(actor=administrator, project=project)
    started = time.perf_counter()
    task = deploy.deploy_release(actor=administrator, release=release, environment=environment).task

    def run():
        from django.db import connection

        try:
            run_server_task(task.pk)
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(lambda: TaskLogLine.objects.filter(task=task, text="first line").exists(), 60, "the deployment's first line")
    elapsed = time.perf_counter() - started
    runner.join(60)
    return elapsed


def main() -> None:
    from deployments.models import Environment, Project, Step
    from infrastructure.models import MachinePolicy, Worker, WorkerPool
    from infrastructure.services import health
    from infrastructure.services.certificates import current_server_certificate
    from infrastructure.services.pools import create_worker_pool
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from infrastructure.transports.polling import presence_key
    from portal.models import Space, User
    from portal.redis import redis_client

    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    processes: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="reef-bench-fleet-"))
    try:
        space = Space.objects.default()
        administrator = User.objects.create_superuser("bench", password="bench-password-1")
        policy = MachinePolicy.objects.create(space=space, name="Fleet", connect_timeout=CONNECT_TIMEOUT, retry_count=0,
                                              retry_wait=0, polling_request_queue_timeout=30, health_check_interval=3600)
        fleet = create_worker_pool(actor=administrator, space=space, name="Fleet")
        deployers = create_worker_pool(actor=administrator, space=space, name="Deployers")
        server_pem = current_server_certificate().certificate_pem
        env = {**os.environ, "DATABASE_URL": database_url()}
        port = free_port()
        endpoint = subprocess.Popen([sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(endpoint)
        endpoint.stdout.readline()
        threading.Thread(target=lambda: [None for _ in endpoint.stdout], daemon=True).start()
        comms = f"https://127.0.0.1:{port}/"

        def register(name: str, pool, live: bool):
            config = fast_instance(work / name, "polling", server_pem, comms=comms)
            register_worker(actor=None, space=space, spec=WorkerSpec(name=name, worker_pools=[pool], machine_policy=policy,
                                                                     endpoint=Endpoint(communication_style="TentacleActive",
                                                                                       uri=f"poll://{config['Subscription']}/",
                                                                                       thumbprint=config["Thumbprint"])))
            return config["Subscription"] if live else None

        live_subscriptions = [register("deployer", deployers, True)]
        live_subscriptions += [register(f"live-{n}", fleet, True) for n in range(LIVE)]
        for n in range(WORKERS - LIVE):
            register(f"dead-{n}", fleet, False)
        names = ["deployer"] + [f"live-{n}" for n in range(LIVE)]
        for name in names:
            processes.append(subprocess.Popen([sys.executable, "-m", "tentacle_agent", "run", "--home", str(work / name)], cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis_client()
        wait_for(lambda: all(client.exists(presence_key(s)) for s in live_subscriptions), 120 + LIVE * 0.5, "the agents to connect")
        wait_for(lambda: Worker.objects.get(name="deployer").health_status == "Healthy", 60, "the deployer to turn Healthy")

        environment = Environment.objects.create(space=space, name="Production")
        project = Project.objects.create(space=space, name="Probe", slug="probe")
        Step.objects.create(project=project, name="Probe", script_body="echo 'first line'", sort_order=0,
                            location=Step.Location.WORKER, worker_pool=deployers)
        idle = statistics.median(first_line_seconds(administrator, project, environment) for _ in range(ROUNDS))

        # Two Celery processes, as a 2-core node has: separate processes (no GIL shared with the task runner),
        # each running one sweep per beat, printing how long each sweep held it.
        sweep_env = {**env, "BENCH_BEAT_SECONDS": str(BEAT_SECONDS)}
        beat = [subprocess.Popen([sys.executable, "-c", CELERY_PROCESS], cwd=ROOT, env=sweep_env, stdout=subprocess.PIPE, text=True)
                for _ in range(CELERY_PROCESSES)]
        processes.extend(beat)
        for process in beat:  # each has started and run one (empty) sweep
            assert process.stdout.readline().startswith("held ")
        # The sweep: every fleet worker Unknown and due now.
        Worker.objects.filter(worker_pools=fleet).update(health_status="Unknown", next_health_check=None, health_check_started=None,
                                                         recheck_attempt=0)
        started = time.monotonic()
        during = []
        fleet_workers = Worker.objects.filter(worker_pools=fleet)

        def settled() -> bool:
            live_ok = fleet_workers.filter(name__startswith="live-", health_status="Healthy").count() == LIVE
            dead_ok = fleet_workers.filter(name__startswith="dead-", health_status="Unavailable").count() == WORKERS - LIVE
            return live_ok and dead_ok

        settled_after = None
        while time.monotonic() - started < 600:
            if len(during) < ROUNDS:
                during.append(first_line_seconds(administrator, project, environment))
            if settled():
                settled_after = time.monotonic() - started
                break
            time.sleep(0.2)
        while len(during) < ROUNDS:
            during.append(first_line_seconds(administrator, project, environment))
        for process in beat:
            process.terminate()
        held = [float(line.split()[1]) for process in beat for line in process.communicate(timeout=400)[0].splitlines()
                if line.startswith("held ")]
        if settled_after is None:
            raise SystemExit("the fleet did not settle within 600 s")

        # One check of a live agent, for the bar.
        one_check = statistics.median(_timed(lambda: health.check_worker_health(Worker.objects.get(name="live-0").pk))
                                      for _ in range(ROUNDS))
        bar = 2 * CONNECT_TIMEOUT + one_check
        during_median = statistics.median(during)
        print(f"fleet: {WORKERS} polling workers, {LIVE} live, {WORKERS - LIVE} never started; "
              f"policy connect timeout {CONNECT_TIMEOUT}s")
        print(f"health_sweep_settled: {settled_after:.2f} s (bar {bar:.2f} s = 2 × {CONNECT_TIMEOUT} s + one live check "
              f"{one_check:.3f} s, ratio {settled_after / bar:.2f})")
        print(f"celery_process_held: {max(held):.2f} s (slowest check's deadline {health.check_deadline(policy):.0f} s, "
              f"ratio {max(held) / health.check_deadline(policy):.3f})")
        print(f"deployment_first_line_during_sweep: {during_median * 1000:.0f} ms (idle {idle * 1000:.0f} ms, "
              f"ratio {during_median / idle:.2f})")
    finally:
        stop(processes)
        runner.teardown_databases(old)


def _timed(function) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
