"""The Workers page: filters by pool, health, communication style, enabled and name; 50 a page; live rows."""

import re

import pytest

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool
from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
from infrastructure.views.workers import WORKERS_PER_PAGE


def _names(html: str) -> list[str]:
    return re.findall(r'<tr data-worker="([^"]+)">', html)


@pytest.fixture
def fleet(space, administrator):
    """web-1 (default pool, listening, Healthy), web-2 (default, polling, Unhealthy, disabled),
    db-1 (Builders, listening, Healthy)."""
    default = WorkerPool.objects.get(space=space, is_default=True)
    builders = create_worker_pool(actor=administrator, space=space, name="Builders")

    def add(name, pool, style, health, disabled=False):
        uri = f"https://{name}:10933/" if style == "TentaclePassive" else f"poll://{name.replace('-', '')}sub/"
        worker = register_worker(
            actor=administrator,
            space=space,
            spec=WorkerSpec(
                name=name,
                worker_pools=[pool],
                is_disabled=disabled,
                endpoint=Endpoint(style, uri=uri, thumbprint="E" * 40),
            ),
        )
        Worker.objects.filter(pk=worker.pk).update(health_status=health)

    add("web-1", default, "TentaclePassive", "Healthy")
    add("web-2", default, "TentacleActive", "Unhealthy", disabled=True)
    add("db-1", builders, "TentaclePassive", "Healthy")
    return {"default": default, "builders": builders}


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ["db-1", "web-1", "web-2"]),
        ("name=WEB", ["web-1", "web-2"]),
        ("pool={builders}", ["db-1"]),
        ("health_status=Unhealthy", ["web-2"]),
        ("communication_style=TentacleActive", ["web-2"]),
        ("disabled=yes", ["web-2"]),
        ("disabled=no&health_status=Healthy&pool={default}", ["web-1"]),
    ],
)
def test_filters_narrow_the_list(page_client, environment_manager, space, fleet, query, expected):
    query = query.format(builders=fleet["builders"].pk, default=fleet["default"].pk)
    response = page_client(environment_manager).get(f"/{space.octopus_id}/infrastructure/workers/?{query}")
    assert response.status_code == 200 and _names(response.content.decode()) == expected


def test_each_row_links_to_the_worker_and_its_pools(page_client, environment_manager, space, fleet):
    html = (
        page_client(environment_manager).get(f"/{space.octopus_id}/infrastructure/workers/?name=db-1").content.decode()
    )
    db = Worker.objects.get(name="db-1")
    assert f'href="/{space.octopus_id}/infrastructure/workers/{db.pk}/">db-1</a>' in html
    assert f'href="/{space.octopus_id}/infrastructure/workerpools/{fleet["builders"].pk}/">Builders</a>' in html


def test_a_filter_matching_nothing_says_so(page_client, environment_manager, space, fleet):
    html = (
        page_client(environment_manager)
        .get(f"/{space.octopus_id}/infrastructure/workers/?name=nomatch")
        .content.decode()
    )
    assert _names(html) == [] and "No workers match these filters." in html


def test_an_unknown_pool_in_the_filter_is_a_400_not_a_500(page_client, environment_manager, space, fleet, other_space):
    foreign = WorkerPool.objects.get(space=other_space, is_default=True)
    response = page_client(environment_manager).get(f"/{space.octopus_id}/infrastructure/workers/?pool={foreign.pk}")
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_workers_come_fifty_a_page_and_the_filters_survive_paging(
    page_client, environment_manager, administrator, space
):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    policy = pool.space.machine_policies.get(is_default=True)
    workers = Worker.objects.bulk_create(
        [
            Worker(
                space=space,
                name=f"w{n:03}",
                communication_style="TentaclePassive",
                uri=f"https://w{n}:10933/",
                thumbprint="F" * 40,
                machine_policy=policy,
            )
            for n in range(WORKERS_PER_PAGE + 5)
        ]
    )
    pool.workers.add(*workers)
    client = page_client(environment_manager)
    first = client.get(f"/{space.octopus_id}/infrastructure/workers/?name=w").content.decode()
    assert len(_names(first)) == WORKERS_PER_PAGE and f"Page 1 of 2 ({WORKERS_PER_PAGE + 5})" in first
    assert 'href="?name=w&amp;page=2"' in first
    second = client.get(f"/{space.octopus_id}/infrastructure/workers/?name=w&page=2").content.decode()
    assert _names(second) == [f"w{n:03}" for n in range(WORKERS_PER_PAGE, WORKERS_PER_PAGE + 5)]


def test_the_table_refreshes_itself_with_the_same_filters(page_client, environment_manager, space, fleet):
    client = page_client(environment_manager)
    page = client.get(f"/{space.octopus_id}/infrastructure/workers/?health_status=Healthy").content.decode()
    rows_url = f"/{space.octopus_id}/infrastructure/workers/rows/?health_status=Healthy"
    assert f'hx-get="{rows_url}" hx-trigger="every 5s"' in page and '<option value="Healthy" selected>' in page
    Worker.objects.filter(name="web-2").update(health_status="Healthy")
    rows = client.get(rows_url, HTTP_HX_REQUEST="true").content.decode()
    assert _names(rows) == ["db-1", "web-1", "web-2"] and "<html" not in rows
