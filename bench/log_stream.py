"""bench/log_stream.py: task log lines from a script to a websocket client.

In one run, against a throwaway database and the real Redis:
1. baseline: a bare Redis publish/subscribe of BENCH_LINES (200,000) lines;
2. a deployment whose step prints BENCH_LINES lines as fast as it can, on the built-in worker through the
   orchestrator: lines per second stored (TaskLogLine rows) and delivered to a client of /ws/tasks/<id>/
   (the real consumer, in this process, through channels' WebsocketCommunicator);
3. a step printing 1,000 lines a second: median and 95th percentile latency from the script writing a
   line to the websocket client receiving it.

    python bench/log_stream.py          # BENCH_LINES=50000 for a quick run
"""

import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_roundtrip import percentile_of  # noqa: E402  (sets Django up)

from django.conf import settings  # noqa: E402
from django.test.utils import get_runner  # noqa: E402

LINES = int(os.environ.get("BENCH_LINES", "200000"))
PACED_SECONDS = 5


def bare_pubsub() -> float:
    """Lines per second through a Redis channel: pipelined PUBLISH, one subscriber counting."""
    from infrastructure.transports.polling import redis_client

    channel = f"reef-bench-{os.getpid()}"
    subscriber = redis_client().pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(channel)
    done = threading.Event()

    def count():
        received = 0
        for message in subscriber.listen():
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

    from deployments.routing import websocket_urlpatterns

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


def deploy_and_watch(admin, project, environment, body: str, on_line) -> tuple[float, object]:
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
    asyncio.run(watch(task.pk, admin, on_line))
    elapsed = time.perf_counter() - started
    runner.join()
    task.refresh_from_db()
    return elapsed, task


def main() -> None:
    from deployments.models import Environment, Project, TaskLogLine
    from portal.models import Space, User

    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    try:
        space = Space.objects.default()
        admin = User.objects.create_superuser("bench", password="bench-password-1")
        environment = Environment.objects.create(space=space, name="Bench")
        project = Project.objects.create(space=space, name="Bench", slug="bench")

        baseline = bare_pubsub()

        delivered = []
        elapsed, task = deploy_and_watch(admin, project, environment,
                                         f"import sys\nsys.stdout.writelines(f'line {{n}}\\n' for n in range({LINES}))\n",
                                         lambda line, now: delivered.append(line["Sequence"]))
        lines = TaskLogLine.objects.filter(task=task, text__startswith="line ")
        first, last = lines.order_by("sequence").first(), lines.order_by("-sequence").first()
        stored_seconds = max((last.occurred - first.occurred).total_seconds(), 1e-6)
        assert task.state == "Success" and lines.count() == LINES, (task.state, lines.count())
        assert delivered == sorted(set(delivered)), "delivered out of order or twice"

        latencies = []
        paced = (f"import time\nstart = time.time()\nfor n in range({PACED_SECONDS * 1000}):\n"
                 "    while time.time() < start + n / 1000:\n        time.sleep(0.0002)\n    print(f'at {time.time():.6f}', flush=True)\n")
        deploy_and_watch(admin, project, environment, paced,
                         lambda line, now: latencies.append((now - float(line["Text"][3:])) * 1000)
                         if line["Text"].startswith("at ") else None)

        delivered_rate = LINES / elapsed
        print(f"baseline bare Redis pub/sub: {baseline:,.0f} lines/s")
        print(f"{LINES:,} lines as fast as a script prints them: stored {LINES / stored_seconds:,.0f} lines/s, "
              f"delivered to the websocket client {delivered_rate:,.0f} lines/s ({len(delivered):,} lines, each once, in order)")
        print(f"at 1,000 lines/s: write → websocket latency median {statistics.median(latencies):.1f} ms, "
              f"p95 {percentile_of(latencies, 0.95):.1f} ms ({len(latencies):,} lines)")
        print(f"log_stream: {delivered_rate:,.0f} lines/s ({baseline:,.0f} lines/s, ratio {delivered_rate / baseline:.2f})")
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
