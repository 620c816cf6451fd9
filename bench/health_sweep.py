"""bench/health_sweep.py: health checks at fleet scale.

In one run, on loopback, against a throwaway database and the real polling endpoint:
1. BENCH_WORKERS registered polling workers (default 1,000): BENCH_LIVE of them (default 200) are live
   agent processes, the rest were never started.
2. Idle baseline: the first-line latency of a deployment (one step on a separate live worker), on a
   node doing nothing else.
3. Every worker is made due and Unknown at once; the sweep runs as Celery beat runs it (every 5 s, two
   sweepers: by default threads of the process that runs the deployment, as `manage.py serve`'s one Celery
   worker runs health checks beside server tasks; BENCH_SWEEP_IN=processes for two separate Celery
   processes), while the polling endpoint's own liveness thread does its part. Measured: the time until every dead
   worker is Unavailable and every
   live one Healthy, the longest one sweep held its Celery process, and the same deployment's
   first-line latency started during the sweep.

The 200 fleet agents stand in for 200 other machines: they run here at `nice -n 19`, so the box's two
cores are shared as a server's would be (its own processes first), not with a fleet's worth of agents.
The deployment's own agent (the "deployer") and every server process run at normal priority; health
checks run at the background priority the server gives them (health.run_at_background_priority).

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
# Where the sweeps run: "threads" of this process, which also runs the deployment (manage.py serve's one
# Celery worker: health-queue threads beside the task runner's), or separate "processes" (a worker of its own).
SWEEP_IN = os.environ.get("BENCH_SWEEP_IN", "threads")


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
    from servertasks.services import logstore

    release = deploy.create_release(actor=administrator, project=project)
    started, wall = time.perf_counter(), time.time()
    task = deploy.deploy_release(actor=administrator, release=release, environment=environment).task

    def run():
        from django.db import connection

        try:
            run_server_task(task.pk)
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(
        lambda: any(line.text == "first line" for line in logstore.iter_lines(task_id=task.pk)),
        60,
        "the deployment's first line",
    )
    elapsed = time.perf_counter() - started
    runner.join(60)
    # Where the wait was (printed, not measured): deploy → the task's first log line (planning), → the
    # script's first line on the worker (start_script and get_status through the polling endpoint), → seen.
    lines = list(logstore.iter_lines(task_id=task.pk))
    script = next(line for line in lines if line.text == "first line")
    BREAKDOWN.append(
        (
            lines[0].occurred.timestamp() - wall,
            script.occurred.timestamp() - lines[0].occurred.timestamp(),
            wall + elapsed - script.occurred.timestamp(),
        )
    )
    return elapsed


BREAKDOWN: list[tuple[float, float, float]] = []


def _breakdown(rows) -> str:
    return ", ".join(
        f"{name} {statistics.median(r[i] for r in rows) * 1000:.0f} ms"
        for i, name in enumerate(("planning", "worker", "seen"))
    )


def main() -> None:
    from deployments.models import Environment, Project, Step
    from infrastructure.models import MachinePolicy, Worker
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
        policy = MachinePolicy.objects.create(
            space=space,
            name="Fleet",
            connect_timeout=CONNECT_TIMEOUT,
            retry_count=0,
            retry_wait=0,
            polling_request_queue_timeout=30,
            health_check_interval=3600,
        )
        fleet = create_worker_pool(actor=administrator, space=space, name="Fleet")
        deployers = create_worker_pool(actor=administrator, space=space, name="Deployers")
        server_pem = current_server_certificate().certificate_pem
        env = {**os.environ, "DATABASE_URL": database_url()}
        port = free_port()
        endpoint = subprocess.Popen(
            [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(endpoint)
        endpoint.stdout.readline()
        threading.Thread(target=lambda: [None for _ in endpoint.stdout], daemon=True).start()
        comms = f"https://127.0.0.1:{port}/"

        def register(name: str, pool, live: bool):
            config = fast_instance(work / name, "polling", server_pem, comms=comms)
            register_worker(
                actor=None,
                space=space,
                spec=WorkerSpec(
                    name=name,
                    worker_pools=[pool],
                    machine_policy=policy,
                    endpoint=Endpoint(
                        communication_style="TentacleActive",
                        uri=f"poll://{config['Subscription']}/",
                        thumbprint=config["Thumbprint"],
                    ),
                ),
            )
            return config["Subscription"] if live else None

        live_subscriptions = [register("deployer", deployers, True)]
        live_subscriptions += [register(f"live-{n}", fleet, True) for n in range(LIVE)]
        for n in range(WORKERS - LIVE):
            register(f"dead-{n}", fleet, False)
        names = ["deployer"] + [f"live-{n}" for n in range(LIVE)]
        for name in names:
            # Fleet agents model other machines: lowest priority. The deployer is the deployment's own worker.
            nice = [] if name == "deployer" else ["nice", "-n", "19"]
            argv = [*nice, sys.executable, "-m", "tentacle_agent", "run", "--home", str(work / name)]
            processes.append(subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis_client()
        wait_for(
            lambda: all(client.exists(presence_key(s)) for s in live_subscriptions),
            120 + LIVE * 0.5,
            "the agents to connect",
        )
        wait_for(
            lambda: Worker.objects.get(name="deployer").health_status == "Healthy", 60, "the deployer to turn Healthy"
        )

        environment = Environment.objects.create(space=space, name="Production")
        project = Project.objects.create(space=space, name="Probe", slug="probe")
        Step.objects.create(
            project=project,
            name="Probe",
            script_body="echo 'first line'",
            sort_order=0,
            location=Step.Location.WORKER,
            worker_pool=deployers,
        )
        idle = statistics.median(first_line_seconds(administrator, project, environment) for _ in range(ROUNDS))
        idle_breakdown, BREAKDOWN[:] = _breakdown(BREAKDOWN), []

        # Two sweepers (SWEEP_IN): threads beside the deployment (one Celery worker per node, sharing its GIL)
        # or separate processes, each running one sweep per beat and recording how long each sweep held it.
        sweep_env = {**env, "BENCH_BEAT_SECONDS": str(BEAT_SECONDS)}
        beat, stop_threads, thread_held = [], threading.Event(), []
        if SWEEP_IN == "processes":
            beat = [
                subprocess.Popen(
                    [sys.executable, "-c", CELERY_PROCESS], cwd=ROOT, env=sweep_env, stdout=subprocess.PIPE, text=True
                )
                for _ in range(CELERY_PROCESSES)
            ]
            processes.extend(beat)
            for process in beat:  # each has started and run one (empty) sweep
                assert process.stdout.readline().startswith("held ")
        sweepers = [
            threading.Thread(target=_sweep_in_thread, args=(stop_threads, thread_held))
            for _ in range(CELERY_PROCESSES if SWEEP_IN == "threads" else 0)
        ]
        for sweeper in sweepers:
            sweeper.start()
        wait_for(lambda: len(thread_held) >= len(sweepers), 60, "the sweeping threads to start")
        # The sweep: every fleet worker Unknown and due now.
        Worker.objects.filter(worker_pools=fleet).update(
            health_status="Unknown", next_health_check=None, health_check_started=None, recheck_attempt=0
        )
        started = time.monotonic()
        during = []
        fleet_workers = Worker.objects.filter(worker_pools=fleet)

        def settled() -> bool:
            live_ok = fleet_workers.filter(name__startswith="live-", health_status="Healthy").count() == LIVE
            dead_ok = (
                fleet_workers.filter(name__startswith="dead-", health_status="Unavailable").count() == WORKERS - LIVE
            )
            return live_ok and dead_ok

        settled_after = _deploy_until_settled(
            settled, started, during, lambda: first_line_seconds(administrator, project, environment)
        )
        for process in beat:
            process.terminate()
        held = [
            float(line.split()[1])
            for process in beat
            for line in process.communicate(timeout=400)[0].splitlines()
            if line.startswith("held ")
        ]
        stop_threads.set()
        for sweeper in sweepers:
            sweeper.join(400)
        held += thread_held
        if settled_after is None:
            raise SystemExit("the fleet did not settle within 600 s")

        # One check of a live agent, for the bar.
        one_check = statistics.median(
            _timed(lambda: health.check_worker_health(Worker.objects.get(name="live-0").pk)) for _ in range(ROUNDS)
        )
        bar = 2 * CONNECT_TIMEOUT + one_check
        during_median = statistics.median(during)
        print(
            f"fleet: {WORKERS} polling workers, {LIVE} live, {WORKERS - LIVE} never started; "
            f"policy connect timeout {CONNECT_TIMEOUT}s"
        )
        print(
            f"health_sweep_settled: {settled_after:.2f} s (bar {bar:.2f} s = 2 × {CONNECT_TIMEOUT} s + one live check "
            f"{one_check:.3f} s, ratio {settled_after / bar:.2f})"
        )
        print(
            f"celery_process_held: {max(held):.2f} s (slowest check's deadline {health.check_deadline(policy):.0f} s, "
            f"ratio {max(held) / health.check_deadline(policy):.3f})"
        )
        print(f"first line, medians: idle {idle_breakdown}; during the sweep {_breakdown(BREAKDOWN)}")
        print(
            f"deployment_first_line_during_sweep: {during_median * 1000:.0f} ms (idle {idle * 1000:.0f} ms, "
            f"ratio {during_median / idle:.2f})"
        )
    finally:
        stop(processes)
        runner.teardown_databases(old)


def _deploy_until_settled(settled, started: float, during: list[float], deploy) -> float | None:
    """Deploy ROUNDS times while the fleet settles; the seconds it took to settle, or None after 600 s."""
    settled_after = None
    while time.monotonic() - started < 600:
        if len(during) < ROUNDS:
            during.append(deploy())
        if settled():
            settled_after = time.monotonic() - started
            break
        time.sleep(0.2)
    while len(during) < ROUNDS:
        during.append(deploy())
    return settled_after


def _sweep_in_thread(stop: threading.Event, held: list[float]) -> None:
    """One health-queue thread of the node's Celery worker: a sweep per beat, in the deployment's process."""
    from django.db import connection

    from infrastructure.services import health

    try:
        while not stop.is_set():
            began = time.monotonic()
            health.run_due_health_checks()
            held.append(time.monotonic() - began)
            stop.wait(max(0.0, BEAT_SECONDS - (time.monotonic() - began)))
    finally:
        connection.close()


def _timed(function) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
