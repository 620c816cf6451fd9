"""Hot pages run the same queries for 5 workers as for 60: no query per worker or per pool row."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool

# page, and what shows that the 60 workers are there
PAGES = [
    ("workerpools/", '<td class="text-end">60</td>'),
    ("workerpools/rows/", '<td class="text-end">60</td>'),
    ("workers/", "w049"),
    ("workers/rows/", "w049"),
    ("workerpools/{pool}/", "w049"),
]


def _add_workers(space, pools, start: int, count: int) -> None:
    policy = space.machine_policies.get(is_default=True)
    workers = Worker.objects.bulk_create(
        [
            Worker(
                space=space,
                name=f"w{n:03}",
                communication_style="TentaclePassive",
                uri=f"https://w{n}:10933/",
                thumbprint=f"{n:040X}",
                machine_policy=policy,
                health_status=Worker.HealthStatus.values[n % 5],
            )
            for n in range(start, start + count)
        ]
    )
    Through = Worker.worker_pools.through
    # Every worker in the default pool and one other, so pool names per worker come from the prefetch.
    Through.objects.bulk_create(
        [
            Through(worker_id=w.pk, workerpool_id=p.pk)
            for i, w in enumerate(workers)
            for p in (pools[0], pools[1 + i % (len(pools) - 1)])
        ]
    )


@pytest.mark.parametrize("page,sixty_workers_shown", PAGES)
def test_page_queries_do_not_grow_with_the_number_of_workers(
    page_client, administrator, space, page, sixty_workers_shown
):
    pools = [WorkerPool.objects.get(space=space, is_default=True)] + [
        create_worker_pool(actor=administrator, space=space, name=f"Pool {n}") for n in range(3)
    ]
    client = page_client(administrator)
    url = f"/{space.octopus_id}/infrastructure/" + page.format(pool=pools[0].pk)
    _add_workers(space, pools, 0, 5)
    client.get(url)  # warm per-process caches (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    _add_workers(space, pools, 5, 55)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert response.status_code == 200 and sixty_workers_shown in response.content.decode()
    assert len(many) == len(few), "\n".join(q["sql"] for q in many.captured_queries)


def test_the_worker_pools_page_stays_within_a_small_fixed_budget(
    page_client, administrator, space, django_assert_max_num_queries
):
    pools = [WorkerPool.objects.get(space=space, is_default=True)] + [
        create_worker_pool(actor=administrator, space=space, name=f"Pool {n}") for n in range(10)
    ]
    _add_workers(space, pools, 0, 60)
    client = page_client(administrator)
    client.get(f"/{space.octopus_id}/infrastructure/workerpools/")
    # session, user, permissions (cached per request), space, visible spaces, the annotated pools: ~10, never per row.
    with django_assert_max_num_queries(12):
        client.get(f"/{space.octopus_id}/infrastructure/workerpools/")
