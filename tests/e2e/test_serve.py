"""`manage.py serve` (what `make run` runs): starts everything, prints the URL, Ctrl-C stops it all."""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, free_port, wait_for_http
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def _children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _local_agent_health(var_dir, within: float) -> str:
    """The first run's demo worker, read straight from the run's own SQLite database."""
    import sqlite3

    def status():
        with sqlite3.connect(var_dir / "reef.sqlite3", timeout=5) as db:
            row = db.execute("SELECT health_status FROM infrastructure_worker WHERE name = 'local-agent'").fetchone()
        return row[0] if row else None

    return wait_until(
        lambda: status() == "Healthy" and "Healthy", timeout=within, interval=1, what="the local agent Healthy"
    )


def _deploy_hello_workers(var_dir, port):
    """The first run's sample project deploys: one step on the local agent, one on the built-in worker."""
    import json

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    key = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--user", "ops", "--purpose", "test"],
        cwd=ROOT,
        env={**env, "REEF_VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def call(method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            method=method,
            headers={"X-Octopus-ApiKey": key, "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body else None,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode() if path.endswith("/raw") else json.loads(response.read())

    project = call("GET", "/api/projects?partialName=Hello%20workers")["Items"][0]
    environment = call("GET", "/api/environments")["Items"][0]
    release = call("POST", "/api/releases", {"ProjectId": project["Id"]})
    task_id = call("POST", "/api/deployments", {"ReleaseId": release["Id"], "EnvironmentId": environment["Id"]})[
        "TaskId"
    ]
    task = wait_until(
        lambda: (t := call("GET", f"/api/tasks/{task_id}"))["IsCompleted"] and t,
        timeout=60,
        interval=0.3,
        what="the Hello workers deployment ending",
    )
    log = call("GET", f"/api/tasks/{task_id}/raw")
    assert task["State"] == "Success", log
    assert "local-agent was chosen because round-robin among 1 healthy workers of Local workers" in log
    assert "a worker in the pool Local workers" in log and "The previous step said: hello from local-agent" in log
    assert "the built-in worker was chosen because the default pool Default Worker Pool has no workers" in log
    assert "which means the default pool Default Worker Pool: the built-in worker ran it." in log


def _serve(tmp_path, port):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env.update(
        REEF_VAR_DIR=str(tmp_path),
        PORT=str(port),
        REEF_POLLING_PORT=str(free_port()),
        REEF_ADMIN_USERNAME="ops",
        REEF_ADMIN_PASSWORD="First-run-password-1",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_starts_daphne_and_celery_and_ctrl_c_stops_every_child(tmp_path):
    for run in (1, 2):  # running it again is safe
        port = free_port()
        process = _serve(tmp_path, port)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as response:
                assert b"Sign in to Reef" in response.read()

            def all_started(process=process):
                found = _children_of(process.pid)
                return found if len(found) >= 4 else None

            children = wait_until(all_started, timeout=30, what="serve's children started")
            assert len(children) == 4, (
                "daphne, the polling endpoint, the local agent, the task runner (Celery: tasks, health, beat)"
            )
            if run == 1:
                assert _local_agent_health(tmp_path, within=90) == "Healthy"
                _deploy_hello_workers(tmp_path, port)
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=40)
        assert process.returncode == 0, output
        assert f"Reef is running at http://localhost:{port}/" in output
        assert ("Created the first administrator ops" in output) == (run == 1)
        wait_until(
            lambda children=children: not [pid for pid in children if _alive(pid)], timeout=10, what="every child gone"
        )


def test_serve_starts_an_embedded_redis_when_none_is_found(tmp_path):
    from portal.management.commands.serve import Command, redis_reachable

    command = Command()
    command.children = []
    url = command.start_embedded_redis(tmp_path)
    try:
        assert redis_reachable(url)
    finally:
        command.stop_children()
    assert not redis_reachable(url)


def test_serve_refuses_a_redis_url_that_does_not_answer(tmp_path):
    env = {**os.environ, "REEF_VAR_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "REDIS_URL is set but Redis does not answer" in result.stderr
