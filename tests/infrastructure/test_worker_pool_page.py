"""A worker pool's page: its workers (paged, live), editing it, making it the default, deleting it."""

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool
from infrastructure.views.pools import WORKERS_PER_PAGE
from portal.models import Event
from tests.conftest import listening_worker


def _workers(space, actor, pools, count, prefix="w"):
    for n in range(count):
        listening_worker(actor, space, f"{prefix}{n:03}", pools, thumbprint=f"{n:040X}")


def test_it_lists_the_pools_workers_a_page_at_a_time(page_client, environment_manager, administrator, space):
    pool = create_worker_pool(actor=administrator, space=space, name="Builders")
    _workers(space, administrator, [pool], WORKERS_PER_PAGE + 1)
    _workers(space, administrator, [WorkerPool.objects.get(space=space, is_default=True)], 1, prefix="elsewhere")
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/"
    first = client.get(url).content.decode()
    assert "w000" in first and f"w{WORKERS_PER_PAGE - 1:03}" in first and f"w{WORKERS_PER_PAGE:03}" not in first
    assert "elsewhere" not in first and f"Page 1 of 2 ({WORKERS_PER_PAGE + 1})" in first
    assert f'hx-get="{url}workers/" hx-trigger="every 5s"' in first
    second = client.get(url + "workers/?page=2").content.decode()
    assert f"w{WORKERS_PER_PAGE:03}" in second and "w000" not in second


def test_editing_the_pool_saves_it_and_a_taken_name_is_a_400(page_client, environment_manager, administrator, space):
    pool = create_worker_pool(actor=administrator, space=space, name="Builders")
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/"
    assert client.post(url, {"name": "Linux builders", "description": "CLI"}).status_code == 302
    pool.refresh_from_db()
    assert (pool.name, pool.description) == ("Linux builders", "CLI")
    taken = client.post(url, {"name": "Default Worker Pool", "description": "changed"})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    pool.refresh_from_db()
    assert (pool.name, pool.description) == ("Linux builders", "CLI")


def test_making_a_pool_the_default_moves_the_badge(page_client, environment_manager, administrator, space):
    old = WorkerPool.objects.get(space=space, is_default=True)
    pool = create_worker_pool(actor=administrator, space=space, name="Builders")
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/default/", follow=True
    )
    assert "Builders is now the default worker pool" in response.content.decode()
    assert (
        WorkerPool.objects.get(space=space, is_default=True) == pool
        and not WorkerPool.objects.get(pk=old.pk).is_default
    )


def test_deleting_the_default_pool_is_refused_with_the_services_reason(page_client, environment_manager, space):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/delete/", follow=True
    )
    assert response.status_code == 200 and response.redirect_chain[-1][0].endswith(f"/workerpools/{pool.pk}/")
    assert (
        "The default worker pool cannot be deleted: make another pool the default first." in response.content.decode()
    )
    assert WorkerPool.objects.filter(pk=pool.pk).exists()


def test_deleting_the_only_pool_of_a_worker_is_refused_and_names_it(
    page_client, environment_manager, administrator, space
):
    pool = create_worker_pool(actor=administrator, space=space, name="Builders")
    _workers(space, administrator, [pool], 1)
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/delete/", follow=True
    )
    assert "only pool of these workers" in response.content.decode() and "w000" in response.content.decode()
    assert WorkerPool.objects.filter(pk=pool.pk).exists() and Worker.objects.count() == 1


def test_deleting_an_unused_pool_removes_it_and_records_who_did(page_client, environment_manager, administrator, space):
    pool = create_worker_pool(actor=administrator, space=space, name="Spare")
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/delete/"
    )
    assert response.status_code == 302 and response["Location"].endswith("/infrastructure/workerpools/")
    assert not WorkerPool.objects.filter(pk=pool.pk).exists()
    assert Event.objects.filter(category=Event.Category.DELETED, user=environment_manager).exists()
