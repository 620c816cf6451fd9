"""bench/pool_pages.py: the Worker Pools page and the Workers page with 50 pools and 2,000 workers.

Builds a throwaway test database (on DATABASE_URL's server, else in-memory SQLite), fills it with
bulk_create, and measures the median time the Django test Client takes to render each page, next to a
trivial Django view (/healthz) measured in the same run. The final line reports the slower page:

    python bench/pool_pages.py            # BENCH_ROUNDS=30 by default
    pool_pages: 41.2 ms (0.61 ms, ratio 67.5)
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("REEF_VAR_DIR", tempfile.mkdtemp(prefix="reef-bench-"))
os.environ.setdefault("REEF_HTTPS", "0")
os.environ.setdefault("REEF_TEST_FAST_HASHER", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import get_runner  # noqa: E402

POOLS, WORKERS = 50, 2000


def median_ms(client, url: str, rounds: int) -> float:
    client.get(url)  # warm up: templates compiled, sessions and permissions cached as in a running server
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples)


def fill(space) -> None:
    """50 pools (the default among them) and 2,000 workers, each in one pool and every tenth in a second."""
    from infrastructure.models import MachinePolicy, Worker, WorkerPool

    pools = [WorkerPool.objects.get(space=space, is_default=True)]
    pools += WorkerPool.objects.bulk_create([WorkerPool(space=space, name=f"Pool {n:02}", sort_order=n) for n in range(1, POOLS)])
    policy = MachinePolicy.objects.get(space=space, is_default=True)
    statuses = Worker.HealthStatus.values
    workers = Worker.objects.bulk_create([
        Worker(space=space, name=f"worker-{n:04}", communication_style="TentaclePassive", uri=f"https://w{n}:10933/",
               thumbprint=f"{n:040X}", machine_policy=policy, health_status=statuses[n % len(statuses)],
               is_disabled=n % 37 == 0) for n in range(WORKERS)])
    Through = Worker.worker_pools.through
    Through.objects.bulk_create([Through(worker_id=w.pk, workerpool_id=pools[i % POOLS].pk) for i, w in enumerate(workers)]
                                + [Through(worker_id=w.pk, workerpool_id=pools[(i + 1) % POOLS].pk)
                                   for i, w in enumerate(workers) if i % 10 == 0])


def main() -> None:
    from django.test import Client

    from portal.models import Space
    from portal.services.users import ensure_first_administrator

    settings.ALLOWED_HOSTS = ["*"]
    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    try:
        space = Space.objects.default()
        admin, _ = ensure_first_administrator(username="bench", password="Bench-password-1")
        fill(space)
        client = Client()
        client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
        rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
        base = f"/{space.octopus_id}/infrastructure"
        baseline = median_ms(client, "/healthz", rounds)
        pools_page = median_ms(client, f"{base}/workerpools/", rounds)
        workers_page = median_ms(client, f"{base}/workers/", rounds)
        workers_filtered = median_ms(client, f"{base}/workers/?health_status=Healthy&disabled=no&name=worker-1", rounds)
        print(f"database: {django.db.connection.vendor}, {POOLS} pools, {WORKERS} workers, {rounds} rounds each")
        print(f"worker pools page: {pools_page:.1f} ms (ratio {pools_page / baseline:.1f})")
        print(f"workers page, 50 a page: {workers_page:.1f} ms (ratio {workers_page / baseline:.1f})")
        print(f"workers page, filtered: {workers_filtered:.1f} ms (ratio {workers_filtered / baseline:.1f})")
        slower = max(pools_page, workers_page)
        print(f"pool_pages: {slower:.1f} ms ({baseline:.2f} ms, ratio {slower / baseline:.1f})")
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
