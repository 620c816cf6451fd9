"""bench/dispatch.py: from "deploy" to a worker, through Celery and the orchestrator.

In one run, on loopback, against a throwaway database, with a real task runner (the threads-pool
Celery worker `make run` starts) and real listening agents:
1. baseline: a bare Celery round trip (send a no-op task to the task runner's queue, get its result);
2. the time from the deploy API call to the first log line of `echo hi` on an idle listening worker.
   1 and 2 alternate round by round, each call after the same PAUSE (the previous deployment ended), so both
   meet the machine in the same state: pings sent back to back, each right after the last, find every process
   and CPU awake (medians of 1.8–3.2 ms here, against 3.3–4.4 ms in alternation, in the same runs; a pause of
   0, 5, 20 or 50 ms made no difference to the latter). The back-to-back figure (this bench's baseline before
   2026-12-07) is printed too;
3. the throughput of BENCH_DEPLOYMENTS (500) one-line deployments over 10 workers;
4. the task runner's peak memory with 100 concurrent BENCH_STEP_SECONDS-second (60) steps.

    python bench/dispatch.py        # BENCH_DEPLOYMENTS=100 BENCH_STEP_SECONDS=10 for a quick run
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Task ids start again in each throwaway database: the live streams of an earlier run must not be read as this one's.
os.environ.setdefault("REEF_STREAM_PREFIX", f"reef-bench-{os.getpid()}")
from agent_roundtrip import ROOT, database_url, fast_instance, free_port, percentile_of, rss_mb, start_agent, stop  # noqa: E402  (sets Django up)
from django.conf import settings  # noqa: E402
from django.test.utils import get_runner  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
DEPLOYMENTS = int(os.environ.get("BENCH_DEPLOYMENTS", "500"))
STEP_SECONDS = int(os.environ.get("BENCH_STEP_SECONDS", "60"))
WORKERS = 10
PAUSE = 0.02  # seconds of quiet before each timed call of 1 and 2
TASK_CAP = 10


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_line(task_id: int, text: str) -> None:
    """Blocks until the task's live stream, which a viewer's websocket follows, carries a line of `text`; an entry
    is appended only once its lines are stored (servertasks/services/logstream.py). A blocking read, not a
    poll of the database every millisecond, which took CPU from the two cores the system under test runs on."""
    import json

    from portal.redis import redis_client
    from servertasks.services import logstore
    from servertasks.services.logstream import stream_key

    key, last, deadline = stream_key(task_id), "0", time.monotonic() + 30
    while time.monotonic() < deadline:
        for _, entries in redis_client().xread({key: last}, block=1000) or []:
            for _, fields in entries:
                data = json.loads(fields[b"data"])
                if fields[b"kind"] == b"lines" and any(line["Text"] == text for line in data):
                    return
                # The task's end trims its stream to that one entry: a line read too late is in storage.
                if fields[b"kind"] == b"state" and data["IsCompleted"]:
                    if any(line.text == text for line in logstore.iter_lines(task_id=task_id)):
                        return
                    raise AssertionError(f"task {task_id} ended without printing {text!r}")
            last = entries[-1][0]
    raise TimeoutError(f"task {task_id} printed no {text!r} within 30 s")


def main() -> None:
    from rest_framework.test import APIClient

    from deployments.models import DeploymentTarget, Environment, Project, Step
    from deployments.services import deploy
    from infrastructure.services.certificates import current_server_certificate
    from infrastructure.services.health import check_worker_health
    from infrastructure.services.pools import create_worker_pool
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from portal.models import Space, User
    from portal.tasks import ping
    from servertasks.models import ServerTask
    from servertasks.services import logstore

    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    processes: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="reef-bench-dispatch-"))
    queue = f"reef.servertasks.bench-{os.getpid()}"
    try:
        space = Space.objects.default()
        admin = User.objects.create_superuser("bench", password="bench-password-1")
        pool = create_worker_pool(actor=admin, space=space, name="Bench workers")
        server_pem = current_server_certificate().certificate_pem
        for n in range(WORKERS):
            port = free_port()
            config = fast_instance(work / f"agent-{n}", "listening", server_pem, port=port)
            processes.append(start_agent(work / f"agent-{n}"))
            worker = register_worker(
                actor=admin,
                space=space,
                spec=WorkerSpec(
                    name=f"bench-{n}",
                    worker_pools=[pool],
                    endpoint=Endpoint(
                        communication_style="TentaclePassive",
                        uri=f"https://127.0.0.1:{port}/",
                        thumbprint=config["Thumbprint"],
                    ),
                ),
            )
            assert check_worker_health(worker.pk).health_status == "Healthy"
        env = {**os.environ, "DATABASE_URL": database_url(), "REEF_TASK_QUEUE": queue}
        task_runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-l",
                "warning",
                "-Q",
                queue,
                "--pool",
                "threads",
                "--concurrency",
                str(TASK_CAP),
                "-n",
                f"bench-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(task_runner)
        settings.CELERY_TASK_ROUTES = {"deployments.run_server_task": {"queue": queue}}
        from portal.celery import app

        app.conf.task_routes = settings.CELERY_TASK_ROUTES
        ping.apply_async(queue=queue).get(timeout=60)  # the runner is up

        back_to_back = []  # the earlier baseline, for comparison
        for _ in range(ROUNDS):
            started = time.perf_counter()
            ping.apply_async(queue=queue).get(timeout=30)
            back_to_back.append((time.perf_counter() - started) * 1000)

        # 1–2. Round by round, each after the same pause: a bare Celery round trip, then deploy (API call) → the
        # first log line on an idle listening worker.
        environment = Environment.objects.create(space=space, name="Bench")
        project = Project.objects.create(space=space, name="Bench", slug="bench")
        Step.objects.create(
            project=project, name="Say hi", location=Step.Location.WORKER, worker_pool=pool, script_body="echo hi"
        )
        release = deploy.create_release(actor=admin, project=project)
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        client = APIClient()
        client.force_authenticate(admin)
        body = {"ReleaseId": release.octopus_id, "EnvironmentId": environment.octopus_id}
        baseline, first_line, idle_calls = [], [], []
        for _ in range(ROUNDS):
            time.sleep(PAUSE)
            started = time.perf_counter()
            ping.apply_async(queue=queue).get(timeout=30)
            baseline.append((time.perf_counter() - started) * 1000)
            time.sleep(PAUSE)
            started = time.perf_counter()
            task_id = ServerTask.pk_from_octopus_id(
                client.post("/api/deployments", body, format="json").json()["TaskId"]
            )
            idle_calls.append((time.perf_counter() - started) * 1000)
            wait_for_line(task_id, "hi")
            first_line.append((time.perf_counter() - started) * 1000)
            assert any(line.text == "hi" for line in logstore.iter_lines(task_id=task_id))  # stored, too
            while not ServerTask.objects.filter(pk=task_id, state="Success").exists():
                time.sleep(0.005)

        # 3. Throughput over the pool.
        started = time.perf_counter()
        ids, busy_calls = [], []  # the deploy call's own time while earlier deployments run
        for _ in range(DEPLOYMENTS):
            call_started = time.perf_counter()
            ids.append(
                ServerTask.pk_from_octopus_id(client.post("/api/deployments", body, format="json").json()["TaskId"])
            )
            if len(ids) > 10:
                busy_calls.append((time.perf_counter() - call_started) * 1000)
        while ServerTask.objects.filter(pk__in=ids, completed__isnull=True).exists():
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        succeeded = ServerTask.objects.filter(pk__in=ids, state="Success").count()

        # 4. Memory: 100 concurrent long steps (10 tasks, each on behalf of 10 targets at once).
        idle_rss = rss_mb(task_runner.pid)
        targets = []
        for n in range(10):
            target = DeploymentTarget.objects.create(space=space, name=f"region-{n}", roles=["bench"])
            target.environments.set([environment])
            targets.append(target)
        long_project = Project.objects.create(space=space, name="Long", slug="long")
        Step.objects.create(
            project=long_project,
            name="Wait",
            location=Step.Location.ON_BEHALF,
            worker_pool=pool,
            target_roles=["bench"],
            max_parallelism=10,
            script_body=f"echo started; sleep {STEP_SECONDS}",
        )
        long_release = deploy.create_release(actor=admin, project=long_project)
        long_ids = [
            deploy.deploy_release(actor=admin, release=long_release, environment=environment).task.pk for _ in range(10)
        ]
        peak_running = 0
        while ServerTask.objects.filter(pk__in=long_ids, completed__isnull=True).exists():
            peak_running = max(
                peak_running,
                sum(line.text == "started" for task_id in long_ids for line in logstore.iter_lines(task_id=task_id)),
            )
            time.sleep(0.5)
        long_ok = ServerTask.objects.filter(pk__in=long_ids, state="Success").count()
        peak = peak_rss_mb(task_runner.pid)

        median_base, median_first = statistics.median(baseline), statistics.median(first_line)
        print(
            f"baseline bare Celery round trip: median {median_base:.2f} ms, p95 {percentile_of(baseline, 0.95):.2f} ms "
            f"(back to back: median {statistics.median(back_to_back):.2f} ms, first line ratio "
            f"{median_first / statistics.median(back_to_back):.1f})"
        )
        print(
            f"deploy API call → first log line (idle listening worker): median {median_first:.2f} ms, "
            f"p95 {percentile_of(first_line, 0.95):.2f} ms"
        )
        print(
            f"throughput: {succeeded} of {DEPLOYMENTS} one-line deployments over {WORKERS} workers in {elapsed:.1f} s, "
            f"{DEPLOYMENTS / elapsed:.1f} deployments/s (task cap {TASK_CAP})"
        )
        print(
            f"memory: {peak_running} concurrent {STEP_SECONDS}-second steps "
            f"({long_ok} of 10 tasks succeeded); task runner RSS "
            f"{idle_rss:.0f} MB idle, peak {peak:.0f} MB"
        )
        idle_call, busy_call = statistics.median(idle_calls), statistics.median(busy_calls or idle_calls)
        print(
            f"deploy API call: median {idle_call:.2f} ms idle, {busy_call:.2f} ms while deployments run "
            f"(ratio {busy_call / idle_call:.1f}; target ≤ 3)"
        )
        print(
            f"first log line p95 against the Celery p95: ratio "
            f"{percentile_of(first_line, 0.95) / percentile_of(baseline, 0.95):.1f} (target ≤ 20)"
        )
        print(f"dispatch: {median_first:.2f} ms ({median_base:.2f} ms, ratio {median_first / median_base:.1f})")
    finally:
        stop(processes)
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
