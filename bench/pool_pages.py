"""bench/pool_pages.py: the Worker Pools page and the Workers page with 50 pools and 2,000 workers.

Builds a throwaway test database (on DATABASE_URL's server, else SQLite) and measures the median time the
Django test Client takes to render each page, signed in, through the whole middleware stack. The baseline
is the same page in the same run, in a second space with one pool (its default) and no workers: same
layout, middleware and session, so the ratio is what the data costs. The two are timed in alternation,
round by round, so that a busy moment of a shared machine falls on both. Each page's query count is
printed for both (it must not grow with the data). The final line reports the page with the worse ratio:

    python bench/pool_pages.py            # BENCH_ROUNDS=30 by default
    pool_pages: 41.2 ms (20.6 ms, ratio 2.0)
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


def query_count(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return len(queries)


def median_ms(client, urls: list[str], rounds: int) -> list[float]:
    """Each URL's median time; the URLs take turns in every round."""
    for url in urls:
        client.get(url)  # warm up: templates compiled, sessions and permissions cached as in a running server
    samples: list[list[float]] = [[] for _ in urls]
    for _ in range(rounds):
        for url, times in zip(urls, samples, strict=True):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
    return [statistics.median(times) for times in samples]


def fill(space, pool_count: int = POOLS, worker_count: int = WORKERS, first: int = 0) -> None:
    """50 pools (the default among them) and 2,000 workers, each in one pool and every tenth in a second."""
    from infrastructure.models import MachinePolicy, Worker, WorkerPool

    pools = [WorkerPool.objects.get(space=space, is_default=True)]
    pools += WorkerPool.objects.bulk_create(
        [WorkerPool(space=space, name=f"Pool {first}-{n:02}", sort_order=n) for n in range(1, pool_count)]
    )
    policy = MachinePolicy.objects.get(space=space, is_default=True)
    statuses = Worker.HealthStatus.values
    workers = Worker.objects.bulk_create(
        [
            Worker(
                space=space,
                name=f"worker-{n:04}",
                communication_style="TentaclePassive",
                uri=f"https://w{n}:10933/",
                thumbprint=f"{n:040X}",
                machine_policy=policy,
                health_status=statuses[n % len(statuses)],
                is_disabled=n % 37 == 0,
            )
            for n in range(first, first + worker_count)
        ]
    )
    Through = Worker.worker_pools.through
    Through.objects.bulk_create(
        [Through(worker_id=w.pk, workerpool_id=pools[i % len(pools)].pk) for i, w in enumerate(workers)]
        + [
            Through(worker_id=w.pk, workerpool_id=pools[(i + 1) % len(pools)].pk)
            for i, w in enumerate(workers)
            if i % 10 == 0
        ]
    )


def main() -> None:
    from django.test import Client

    from infrastructure.models import Worker, WorkerPool
    from portal.models import Space
    from portal.services.spaces import create_space
    from portal.services.users import ensure_first_administrator

    settings.ALLOWED_HOSTS = ["*"]
    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    try:
        space = Space.objects.default()
        admin, _ = ensure_first_administrator(username="bench", password="Bench-password-1")
        client = Client()
        client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
        rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
        paths = {
            "worker pools page": "infrastructure/workerpools/",
            "workers page, 50 a page": "infrastructure/workers/",
            "workers page, filtered": "infrastructure/workers/?health_status=Healthy&disabled=no&name=worker-1",
        }
        baseline = create_space(actor=admin, name="Baseline")  # its default pool and nothing else
        pages = {name: f"/{space.octopus_id}/{path}" for name, path in paths.items()}
        empty_pages = {name: f"/{baseline.octopus_id}/{path}" for name, path in paths.items()}
        # A few pools and workers (named so that the filter matches some): the query counts the full data
        # must not exceed.
        fill(space, 3, 20, first=1000)
        few = {name: query_count(client, url) for name, url in pages.items()}
        WorkerPool.objects.filter(space=space, is_default=False).delete()
        Worker.objects.all().delete()
        fill(space)
        empty, full = {}, {}
        for name in pages:
            empty_ms, full_ms = median_ms(client, [empty_pages[name], pages[name]], rounds)
            empty[name] = (empty_ms, query_count(client, empty_pages[name]))
            full[name] = (full_ms, query_count(client, pages[name]))
        print(f"database: {django.db.connection.vendor}, {POOLS} pools, {WORKERS} workers, {rounds} rounds each")
        for name in pages:
            (empty_ms, empty_queries), (full_ms, full_queries) = empty[name], full[name]
            print(
                f"{name}: {full_ms:.1f} ms, {full_queries} queries (one pool, no workers: {empty_ms:.1f} ms, "
                f"{empty_queries} queries; 3 pools and 20 workers: {few[name]} queries; ratio {full_ms / empty_ms:.2f})"
            )
        constant = all(few[name] == full[name][1] for name in pages)
        print(f"query counts the same for 20 and {WORKERS:,} workers: {'yes' if constant else 'NO'}")
        worst = max(["worker pools page", "workers page, 50 a page"], key=lambda name: full[name][0] / empty[name][0])
        print(
            f"pool_pages: {full[worst][0]:.1f} ms "
            f"({empty[worst][0]:.1f} ms, ratio {full[worst][0] / empty[worst][0]:.2f})"
        )
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
