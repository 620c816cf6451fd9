"""The Workers and Worker Pools tables (written in Python, not by the template engine) escape what users typed:
names, descriptions and worker types show as text, never as markup."""

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool
from tests.conftest import listening_worker

MARKUP = '<b onclick="x()">A & B</b>'
ESCAPED = "&lt;b onclick=&quot;x()&quot;&gt;A &amp; B&lt;/b&gt;"


def _markup_names(space, administrator) -> None:
    static = create_worker_pool(actor=administrator, space=space, name="Static", description="Static pool")
    create_worker_pool(
        actor=administrator, space=space, name="Leased", pool_type="DynamicWorkerPool", worker_type="ubuntu"
    )
    worker = listening_worker(administrator, space, "w1", [static])
    # Past the services' checks on purpose: whatever is stored, the tables show as text.
    WorkerPool.objects.filter(pk=static.pk).update(name=f"{MARKUP} pool", description=f"{MARKUP} described")
    WorkerPool.objects.filter(name="Leased").update(worker_type=f"{MARKUP} type")
    Worker.objects.filter(pk=worker.pk).update(name=f"{MARKUP} worker", uri=f"https://{MARKUP}:10933/")


def test_the_worker_pools_table_escapes_names_descriptions_and_worker_types(page_client, administrator, space):
    _markup_names(space, administrator)
    client = page_client(administrator)
    for url in ("workerpools/", "workerpools/rows/"):
        html = client.get(f"/{space.octopus_id}/infrastructure/{url}").content.decode()
        assert MARKUP not in html
        assert f'<tr data-pool="{ESCAPED} pool">' in html
        assert f'title="Move {ESCAPED} pool up"' in html
        assert f'<div class="small text-muted">{ESCAPED} described</div>' in html
        assert f"dynamic · {ESCAPED} type</span>" in html


def test_the_workers_table_and_pool_filter_escape_names_and_endpoints(page_client, administrator, space):
    _markup_names(space, administrator)
    pool = WorkerPool.objects.get(space=space, name=f"{MARKUP} pool")
    response = page_client(administrator).get(f"/{space.octopus_id}/infrastructure/workers/?pool={pool.pk}")
    html = response.content.decode()
    assert MARKUP not in html
    assert f'<tr data-worker="{ESCAPED} worker">' in html
    assert f">{ESCAPED} pool</a>" in html  # the worker's pools
    assert f"<code>https://{ESCAPED}:10933/</code>" in html
    assert f'<option value="{pool.pk}" selected>{ESCAPED} pool</option>' in html
