"""A worker's page: endpoint, pools, policy, capabilities, status and the last check's log (live);
check health now, enable/disable, edit, delete."""

import re

import pytest
from django.utils import timezone

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.pools import create_worker_pool
from portal.models import Event
from tests.conftest import listening_worker


@pytest.fixture
def worker(space, administrator):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    worker = listening_worker(administrator, space, "web-01", [pool])
    Worker.objects.filter(pk=worker.pk).update(
        health_status="HasWarnings",
        status_summary="Healthy, with warnings: disk 91% full",
        last_health_check=timezone.now(),
        health_check_log="Connected. Linux x86_64\nWARNING: disk 91% full",
        capabilities={
            "OperatingSystem": "Linux",
            "Architecture": "x86_64",
            "Shells": ["bash", "sh"],
            "Tools": {"kubectl": "/usr/bin/kubectl", "terraform": "/usr/local/bin/terraform"},
            "AgentVersion": "0.1.0",
        },
    )
    return Worker.objects.get(pk=worker.pk)


def _url(space, worker, action=""):
    return f"/{space.octopus_id}/infrastructure/workers/{worker.pk}/{action}"


def test_it_shows_the_endpoint_pools_policy_capabilities_status_and_log(
    page_client, environment_manager, space, worker
):
    html = page_client(environment_manager).get(_url(space, worker)).content.decode()
    for expected in [
        "https://web-01:10933/",
        "A" * 40,
        "Default Worker Pool",
        "Default Machine Policy",
        '<span class="badge badge-health-HasWarnings">Has warnings</span>',
        "Healthy, with warnings: disk 91% full",
        "WARNING: disk 91% full",
        ">Linux<",
        ">kubectl<",
        ">terraform<",
        ">bash<",
        ">0.1.0<",
        "Check health now",
    ]:
        assert expected in html, expected
    assert f'hx-get="{_url(space, worker, "status/")}" hx-trigger="every 5s"' in html


def test_the_status_partial_follows_the_worker_without_a_reload(page_client, environment_manager, space, worker):
    Worker.objects.filter(pk=worker.pk).update(health_status="Unavailable", status_summary="Could not connect: refused")
    html = page_client(environment_manager).get(_url(space, worker, "status/"), HTTP_HX_REQUEST="true").content.decode()
    assert "badge-health-Unavailable" in html and "Could not connect: refused" in html and "<html" not in html


def test_check_health_now_queues_a_health_check_task_for_the_worker(page_client, environment_manager, space, worker):
    from servertasks.models import ServerTask

    response = page_client(environment_manager).post(_url(space, worker, "health/"), follow=True)
    task = ServerTask.objects.get(name="Health", arguments={"WorkerIds": [worker.octopus_id]})
    assert task.state == "Queued" and task.created_by == environment_manager
    assert f"Health check of web-01 queued as {task.octopus_id}" in response.content.decode()
    assert page_client(environment_manager).get(_url(space, worker, "health/")).status_code == 405


def test_recent_health_check_tasks_are_linked(page_client, environment_manager, space, worker):
    from servertasks.models import ServerTask

    task = ServerTask.objects.create(
        space=space, name="Health", description="Check health of web-01", arguments={"WorkerIds": [worker.octopus_id]}
    )
    ServerTask.objects.create(
        space=space, name="Health", description="another worker", arguments={"WorkerIds": ["Workers-999"]}
    )
    html = page_client(environment_manager).get(_url(space, worker)).content.decode()
    assert re.findall(r"/tasks/(\d+)/", html) == [str(task.pk)]


def test_disabling_and_enabling_the_worker(page_client, environment_manager, space, worker):
    client = page_client(environment_manager)
    disabled = client.post(_url(space, worker, "disable/"), follow=True).content.decode()
    assert Worker.objects.get(pk=worker.pk).is_disabled and "Enable</button>" in disabled
    client.post(_url(space, worker, "enable/"))
    assert not Worker.objects.get(pk=worker.pk).is_disabled


def test_editing_moves_the_worker_to_another_pool_and_bad_input_changes_nothing(
    page_client, environment_manager, administrator, space, worker
):
    builders = create_worker_pool(actor=administrator, space=space, name="Builders")
    client = page_client(environment_manager)
    form = {
        "name": "web-01",
        "worker_pool_ids": [builders.pk],
        "machine_policy_id": worker.machine_policy_id,
        "uri": "https://web-01:10933/",
        "thumbprint": "A" * 40,
    }
    bad = client.post(_url(space, worker, "edit/"), {**form, "thumbprint": "short"})
    assert bad.status_code == 400 and 'data-field="thumbprint"' in bad.content.decode()
    assert list(Worker.objects.get(pk=worker.pk).worker_pools.values_list("name", flat=True)) == ["Default Worker Pool"]
    assert client.post(_url(space, worker, "edit/"), form).status_code == 302
    assert list(Worker.objects.get(pk=worker.pk).worker_pools.values_list("name", flat=True)) == ["Builders"]


def test_the_edit_form_starts_from_the_worker(page_client, environment_manager, space, worker):
    html = page_client(environment_manager).get(_url(space, worker, "edit/")).content.decode()
    assert 'value="https://web-01:10933/"' in html and f'value="{"A" * 40}"' in html and 'value="web-01"' in html


def test_deleting_the_worker(page_client, environment_manager, space, worker):
    response = page_client(environment_manager).post(_url(space, worker, "delete/"))
    assert response.status_code == 302 and response["Location"].endswith("/infrastructure/workers/")
    assert not Worker.objects.filter(pk=worker.pk).exists()
    assert Event.objects.filter(
        category=Event.Category.DELETED, user=environment_manager, document_type="Worker"
    ).exists()
