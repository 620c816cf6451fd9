"""The task page: re-run only for people who may run the thing again, the workers leased for each step
with the rule that chose them while the task runs, and a long log started at its newest lines."""

import pytest

from deployments.models import WorkerLease
from deployments.views.tasks import LOG_LINES_SHOWN
from infrastructure.models import WorkerPool
from infrastructure.services import workers
from infrastructure.services.workers import Endpoint, WorkerSpec
from servertasks.models import ServerTask, TaskLogLine
from servertasks.services import logstore

pytestmark = pytest.mark.django_db


def task_page(client, task) -> str:
    return client.get(f"/{task.space.octopus_id}/tasks/{task.pk}/").content.decode()


def test_re_run_is_offered_to_a_deployment_creator_and_not_to_a_viewer(
    page_client, space, deployment_creator, project_viewer
):
    task = ServerTask.objects.create(
        space=space, name="Deploy", description="Deploy 1.0 to Production", state="Success"
    )
    assert 'id="rerun-task"' not in task_page(page_client(project_viewer), task)
    assert 'id="cancel-task"' not in task_page(page_client(project_viewer), task)
    assert 'id="rerun-task"' in task_page(page_client(deployment_creator), task)


def test_a_running_task_shows_which_worker_each_step_leased_and_why(page_client, space, administrator):
    worker = workers.register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="builder-07",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            endpoint=Endpoint(communication_style="TentaclePassive", uri="https://b7:10933/", thumbprint="B" * 40),
        ),
    )
    task = ServerTask.objects.create(space=space, name="Deploy", description="Deploy", state="Executing")
    WorkerLease.objects.create(
        task=task, worker=worker, step_name="Migrate", rule="fewest active leases in Default Worker Pool"
    )
    page = task_page(page_client(administrator), task)
    assert "Migrate: <strong>builder-07</strong>" in page and "fewest active leases in Default Worker Pool" in page
    assert 'id="cancel-task"' in page


def test_a_long_log_opens_at_its_newest_lines(page_client, space, administrator):
    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Chatty", state="Success")
    logstore.store_lines([TaskLogLine(task=task, sequence=n, text="x") for n in range(LOG_LINES_SHOWN + 50)])
    assert f'data-start-after="49" data-limit="{LOG_LINES_SHOWN}"' in task_page(page_client(administrator), task)
    short = ServerTask.objects.create(space=space, name="AdHocScript", description="Quiet", state="Success")
    assert 'data-start-after="-1"' in task_page(page_client(administrator), short)
