"""bench/log_stream.py: task log lines from a script to storage and to a websocket client.

Runs once per database (SQLite, and PostgreSQL when one answers on 127.0.0.1:5432, each a throwaway
database; the real Redis), and in each run:
1. baseline: a bare Redis publish/subscribe of BENCH_LINES (200,000) lines;
2. a deployment whose step prints BENCH_LINES lines as fast as it can, on the built-in worker through the
   orchestrator, nobody watching: lines per second stored (first chunk written → last chunk written), and
   the server process's CPU time per line (the built-in worker's reader, orchestrator, masking, chunking,
   storing and publishing all run in it; the script itself is a child and not counted);
3. the same with a client of /ws/tasks/<id>/ (the real consumer, in this process, through channels'
   WebsocketCommunicator): lines per second delivered, each checked once and in order;
4. a step printing 1,000 lines a second: p50 and p99 latency from the script writing a line to the
   websocket client receiving it.

    python bench/log_stream.py          # BENCH_LINES=50000 for a quick run; BENCH_DATABASES=sqlite for one
"""

import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __name__ == "__main__" and "BENCH_DATABASE" not in os.environ:
    pass  # the parent only starts one child per database (below); Django is set up in each child
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from agent_roundtrip import percentile_of  # noqa: E402  (sets Django up)

LINES = int(os.environ.get("BENCH_LINES", "200000"))
PACED_SECONDS = 5


def bare_pubsub() -> float:
    """Lines per second through a Redis channel: pipelined PUBLISH, one subscriber counting."""
    from portal.redis import redis_client

    channel = f"reef-bench-{os.getpid()}"
    subscriber = redis_client().pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(channel)
    done = threading.Event()

    def count():
        received = 0
        for _message in subscriber.listen():
            received += 1
            if received == LINES:
                done.set()
                return

    threading.Thread(target=count, daemon=True).start()
    time.sleep(0.2)
    publisher = redis_client()
    started = time.perf_counter()
    for start in range(0, LINES, 1000):
        pipe = publisher.pipeline(transaction=False)
        for n in range(start, min(LINES, start + 1000)):
            pipe.publish(channel, f"line {n}")
        pipe.execute()
    done.wait(300)
    elapsed = time.perf_counter() - started
    subscriber.close()
    return LINES / elapsed


async def watch(task_id: int, user, on_line) -> None:
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from servertasks.routing import websocket_urlpatterns

    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/tasks/{task_id}/")
    communicator.scope["user"] = user
    await communicator.connect()
    await communicator.send_json_to({"after": -1})
    while True:
        message = await communicator.receive_json_from(timeout=600)
        if message["type"] == "lines":
            now = time.time()
            for line in message["lines"]:
                on_line(line, now)
            await communicator.send_json_to({"ack": message["lines"][-1]["Sequence"]})
        elif message["type"] == "end":
            break
    await communicator.disconnect()


def deploy_and_watch(admin, project, environment, body: str, on_line=None) -> tuple[float, object]:
    """Runs one deployment here (as the task runner would); watches it over the websocket unless on_line is None."""
    from deployments.models import Step
    from deployments.services import deploy
    from deployments.services.orchestrator import run_server_task

    project.steps.all().delete()
    Step.objects.create(project=project, name="Print", location=Step.Location.SERVER, syntax="Python", script_body=body)
    release = deploy.create_release(actor=admin, project=project)
    task = deploy.deploy_release(actor=admin, release=release, environment=environment).task
    started = time.perf_counter()
    runner = threading.Thread(target=run_server_task, args=(task.pk,))
    runner.start()
    if on_line is not None:
        asyncio.run(watch(task.pk, admin, on_line))
    runner.join()
    elapsed = time.perf_counter() - started
    task.refresh_from_db()
    return elapsed, task


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one_database() -> None:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import get_runner

    from deployments.models import Environment, Project
    from portal.models import Space, User
    from servertasks.services import logstore

    stores: list[tuple[float, float, int]] = []  # (started, ended, lines) of each INSERT
    real_store = logstore.store_lines

    def timed_store(batch):
        started = time.perf_counter()
        chunks = real_store(batch)
        stores.append((started, time.perf_counter(), len(batch)))
        return chunks

    logstore.store_lines = timed_store
    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    name = os.environ["BENCH_DATABASE"]
    try:
        space = Space.objects.default()
        admin = User.objects.create_superuser("bench", password="bench-password-1")
        environment = Environment.objects.create(space=space, name="Bench")
        project = Project.objects.create(space=space, name="Bench", slug="bench")
        fast = f"import sys\nsys.stdout.writelines(f'line {{n}}\\n' for n in range({LINES}))\n"

        baseline = bare_pubsub()

        # 2. Stored, nobody watching; the server process's CPU per line.
        stores.clear()
        cpu = cpu_seconds()
        _, task = deploy_and_watch(admin, project, environment, fast)
        cpu = cpu_seconds() - cpu
        texts = [line.text for line in logstore.iter_lines(task_id=task.pk) if line.text.startswith("line ")]
        assert task.state == "Success" and texts == [f"line {n}" for n in range(LINES)], (task.state, len(texts))
        stored_rate = sum(n for _, _, n in stores) / max(stores[-1][1] - stores[0][0], 1e-6)
        chunks = task.log_chunks.count()
        from portal.redis import redis_client
        from servertasks.services import logstream

        key = logstream.stream_key(task.pk)
        stream_kb, stream_ttl = (redis_client().memory_usage(key) or 0) / 1024, redis_client().ttl(key)

        # 3. Delivered to a live viewer, each line once and in order.
        delivered = []
        elapsed, task = deploy_and_watch(
            admin, project, environment, fast, lambda line, now: delivered.append(line["Sequence"])
        )
        assert task.state == "Success"
        assert delivered == list(range(len(delivered))) and len(delivered) >= LINES, (
            "delivered out of order, twice or not at all"
        )
        delivered_rate = LINES / elapsed

        # 4. Latency at 1,000 lines a second.
        latencies = []
        paced = (
            f"import time\nstart = time.time()\nfor n in range({PACED_SECONDS * 1000}):\n"
            "    while time.time() < start + n / 1000:\n        time.sleep(0.0002)\n"
            "    print(f'at {time.time():.6f}', flush=True)\n"
        )
        deploy_and_watch(
            admin,
            project,
            environment,
            paced,
            lambda line, now: (
                latencies.append((now - float(line["Text"][3:])) * 1000) if line["Text"].startswith("at ") else None
            ),
        )

        print(f"[{name}] baseline bare Redis pub/sub: {baseline:,.0f} lines/s")
        print(
            f"[{name}] {LINES:,} lines as fast as a script prints them: "
            f"stored {stored_rate:,.0f} lines/s in {chunks:,} chunks, "
            f"server CPU {cpu / LINES * 1e6:.1f} µs per line; "
            f"delivered to a websocket client {delivered_rate:,.0f} lines/s "
            f"({len(delivered):,} lines, each once, in order)"
        )
        print(f"[{name}] the task's Redis stream after it ended: {stream_kb:,.0f} KiB, expiring in {stream_ttl} s")
        print(
            f"[{name}] at 1,000 lines/s: write → websocket latency p50 {percentile_of(latencies, 0.5):.1f} ms, "
            f"p99 {percentile_of(latencies, 0.99):.1f} ms ({len(latencies):,} lines)"
        )
        print(
            f"RESULT {name} {stored_rate:.0f} {baseline:.0f} {cpu / LINES * 1e6:.2f} {delivered_rate:.0f} "
            f"{percentile_of(latencies, 0.5):.2f} {percentile_of(latencies, 0.99):.2f}",
            flush=True,
        )
        if connection.vendor == "postgresql":  # the consumer's and orchestrator's threads still hold sessions
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        connection.close()
    finally:
        runner.teardown_databases(old)


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> None:
    """One child per database, so each has its own Django settings; the figures are compared at the end."""
    wanted = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
    results = []
    for name in wanted:
        if name == "postgresql" and not postgres_answers():
            print("[postgresql] skipped: nothing answers on 127.0.0.1:5432")
            continue
        environment = dict(os.environ, BENCH_DATABASE=name, REEF_VAR_DIR=tempfile.mkdtemp(prefix="reef-bench-log-"))
        # reef_<pid>: the test harness drops such databases once their process is gone.
        environment["DATABASE_URL"] = (
            f"postgres://postgres@127.0.0.1:5432/reef_{os.getpid()}"
            if name == "postgresql"
            else f"sqlite:///{environment['REEF_VAR_DIR']}/bench.sqlite3"
        )
        child = subprocess.Popen([sys.executable, __file__], env=environment, stdout=subprocess.PIPE, text=True)
        for line in child.stdout:
            if line.startswith("RESULT "):
                results.append(line.split()[1:])
            else:
                print(line, end="", flush=True)
        if child.wait() != 0:
            raise SystemExit(f"the {name} run failed")
    for name, stored, baseline, cpu, delivered, p50, p99 in results:
        print(
            f"log_stream [{name}] stored: {float(stored):,.0f} lines/s "
            f"({float(baseline):,.0f} lines/s bare Redis pub/sub, "
            f"ratio {float(stored) / float(baseline):.2f}); server CPU {float(cpu):.1f} µs/line; "
            f"delivered {float(delivered):,.0f} lines/s "
            f"(ratio {float(delivered) / float(baseline):.2f}); "
            f"latency p50 {float(p50):.1f} ms, p99 {float(p99):.1f} ms"
        )
    worst = min(results, key=lambda r: float(r[1]) / float(r[2]))
    print(
        f"log_stream: {float(worst[1]):,.0f} lines/s stored, worst of {', '.join(r[0] for r in results)} "
        f"({float(worst[2]):,.0f} lines/s bare Redis pub/sub, ratio {float(worst[1]) / float(worst[2]):.2f})"
    )


if __name__ == "__main__":
    if "BENCH_DATABASE" in os.environ:
        run_one_database()
    else:
        main()
