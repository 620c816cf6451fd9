"""bench/pool_pages.py: the Worker Pools page and the workers API with 50 pools and 2,000 workers.

Runs against DATABASE_URL (else a throwaway SQLite file) in a database of its own, and prints the
median render time next to a trivial Django view (/healthz) measured in the same run:

    python bench/pool_pages.py
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


def median_ms(client, url: str, rounds: int) -> float:
    client.get(url)  # warm up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples)


def main() -> None:
    from django.test import Client

    from infrastructure.models import MachinePolicy, Worker, WorkerPool
    from portal.models import Space
    from portal.services.users import ensure_first_administrator

    settings.ALLOWED_HOSTS = ["*"]
    runner = get_runner(settings)(verbosity=0, interactive=False)
    old = runner.setup_databases()
    try:
        space = Space.objects.default()
        admin, _ = ensure_first_administrator(username="bench", password="Bench-password-1")
        pools = WorkerPool.objects.bulk_create([WorkerPool(space=space, name=f"Pool {n:02}", sort_order=n) for n in range(1, 50)])
        pools.append(WorkerPool.objects.get(space=space, is_default=True))
        policy = MachinePolicy.objects.get(space=space, is_default=True)
        statuses = Worker.HealthStatus.values
        workers = Worker.objects.bulk_create([
            Worker(space=space, name=f"worker-{n:04}", communication_style="TentaclePassive", uri=f"https://w{n}:10933/",
                   thumbprint=f"{n:040X}", machine_policy=policy, health_status=statuses[n % len(statuses)]) for n in range(2000)])
        Through = Worker.worker_pools.through
        Through.objects.bulk_create([Through(worker_id=w.pk, workerpool_id=pools[i % 50].pk) for i, w in enumerate(workers)])

        client = Client()
        client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
        rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
        baseline = median_ms(client, "/healthz", rounds)
        pools_page = median_ms(client, f"/{space.octopus_id}/infrastructure/workerpools/", rounds)
        workers_page = median_ms(client, f"/{space.octopus_id}/infrastructure/workers/", rounds)
        workers_api = median_ms(client, f"/api/{space.octopus_id}/workers?take=100", rounds)
        print(f"workers page: {workers_page:.1f} ms (ratio {workers_page / baseline:.1f})")
        print(f"workers API, 100 per page: {workers_api:.1f} ms (ratio {workers_api / baseline:.1f})")
        print(f"pool_pages: {pools_page:.1f} ms ({baseline:.2f} ms, ratio {pools_page / baseline:.1f})")
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
