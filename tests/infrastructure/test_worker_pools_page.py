"""The Worker Pools page: pools in their order with live health counts, adding one, reordering."""

import re

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool
from tests.conftest import listening_worker


def _worker(space, actor, name, pools, health):
    worker = listening_worker(actor, space, name, pools, thumbprint="D" * 40)
    Worker.objects.filter(pk=worker.pk).update(health_status=health)


def _pool_names_in_order(html: str) -> list[str]:
    return re.findall(r'<tr data-pool="([^"]+)">', html)


def test_pools_are_listed_in_order_with_their_workers_counted_by_health(
    page_client, environment_manager, administrator, space
):
    default = WorkerPool.objects.get(space=space, is_default=True)
    builders = create_worker_pool(actor=administrator, space=space, name="Builders", description="Heavy CLI steps")
    create_worker_pool(
        actor=administrator, space=space, name="Leased", pool_type="DynamicWorkerPool", worker_type="ubuntu-22.04"
    )
    for n, health in enumerate(["Healthy", "Healthy", "HasWarnings", "Unavailable"]):
        _worker(space, administrator, f"b{n}", [builders], health)
    page = page_client(environment_manager).get(f"/{space.octopus_id}/infrastructure/workerpools/")
    html = page.content.decode()
    assert page.status_code == 200
    assert _pool_names_in_order(html) == [default.name, "Builders", "Leased"]
    builders_row = html.split('data-pool="Builders"')[1].split("</tr>")[0]
    assert '<span class="badge badge-health-Healthy">2 healthy</span>' in builders_row
    assert '<span class="badge badge-health-HasWarnings">1 with warnings</span>' in builders_row
    assert '<span class="badge badge-health-Unavailable">1 unavailable</span>' in builders_row
    assert "Heavy CLI steps" in builders_row
    assert f'href="/{space.octopus_id}/infrastructure/workerpools/{builders.pk}/"' in builders_row
    default_row = html.split(f'data-pool="{default.name}"')[1].split("</tr>")[0]
    assert ">default</span>" in default_row and "built-in worker" in default_row
    assert "dynamic · ubuntu-22.04" in html


def test_the_counts_refresh_without_a_reload(page_client, environment_manager, administrator, space):
    client = page_client(environment_manager)
    page = client.get(f"/{space.octopus_id}/infrastructure/workerpools/").content.decode()
    rows_url = f"/{space.octopus_id}/infrastructure/workerpools/rows/"
    assert f'hx-get="{rows_url}" hx-trigger="every 5s"' in page
    _worker(space, administrator, "late", [WorkerPool.objects.get(space=space, is_default=True)], "Unhealthy")
    rows = client.get(rows_url, HTTP_HX_REQUEST="true")
    assert rows.status_code == 200 and "1 unhealthy" in rows.content.decode() and "<html" not in rows.content.decode()


def test_an_environment_manager_adds_a_static_pool(page_client, environment_manager, space):
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/",
        {"name": "Linux builders", "description": "CLI tools", "pool_type": "StaticWorkerPool"},
    )
    pool = WorkerPool.objects.get(space=space, name="Linux builders")
    assert (
        response.status_code == 302
        and response["Location"] == f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/"
    )
    assert pool.description == "CLI tools" and not pool.is_default


def test_a_taken_name_is_a_400_with_the_error_on_the_name_and_nothing_saved(page_client, environment_manager, space):
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/",
        {"name": "default worker pool", "pool_type": "StaticWorkerPool"},
    )
    assert response.status_code == 400
    assert re.search(r'data-field="name">A worker pool named .* already exists', response.content.decode())
    assert WorkerPool.objects.filter(space=space).count() == 1


def test_a_dynamic_pool_without_a_worker_type_is_a_400_on_the_worker_type(page_client, environment_manager, space):
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workerpools/",
        {"name": "Leased", "pool_type": "DynamicWorkerPool", "worker_type": ""},
    )
    assert (
        response.status_code == 400
        and 'data-field="worker_type">A dynamic worker pool needs a worker type' in response.content.decode()
    )
    assert not WorkerPool.objects.filter(name="Leased").exists()


def test_moving_a_pool_up_reorders_the_list(page_client, environment_manager, administrator, space):
    create_worker_pool(actor=administrator, space=space, name="A")
    b = create_worker_pool(actor=administrator, space=space, name="B")
    client = page_client(environment_manager)
    assert client.post(f"/{space.octopus_id}/infrastructure/workerpools/{b.pk}/move/up/").status_code == 302
    assert client.post(f"/{space.octopus_id}/infrastructure/workerpools/{b.pk}/move/up/").status_code == 302
    html = client.get(f"/{space.octopus_id}/infrastructure/workerpools/").content.decode()
    assert _pool_names_in_order(html) == ["B", "Default Worker Pool", "A"]
    assert client.post(f"/{space.octopus_id}/infrastructure/workerpools/{b.pk}/move/sideways/").status_code == 404
