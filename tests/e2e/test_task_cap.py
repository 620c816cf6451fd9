"""Each server node runs at most its task cap at once; more tasks wait Queued, in order, and all finish."""

import subprocess
import sys
import time

import pytest
from django.conf import settings

from deployments.services import deploy
from servertasks.models import ServerTask
from tests.deployments.conftest import add_step, production, project  # noqa: F401 - fixtures
from tests.e2e.conftest import ROOT, server_env
from tests.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def task_runner(transactional_db):
    """The node's task runner as `make run` starts it, with a task cap of 2 and one thread for the health queue."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-l",
            "warning",
            "-Q",
            settings.REEF_TASK_QUEUE,
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--health-queue",
            settings.REEF_HEALTH_QUEUE,
            "--health-concurrency",
            "1",
            "-n",
            f"test-tasks-{time.time_ns()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(timeout=20)


def test_a_node_runs_at_most_its_task_cap_and_the_rest_wait_in_order(task_runner, administrator, project, production):
    add_step(project, "Hold", "sleep 1.5; echo done")
    release = deploy.create_release(actor=administrator, project=project)
    tasks = [deploy.deploy_release(actor=administrator, release=release, environment=production).task for _ in range(5)]
    peak, deadline = 0, time.monotonic() + 90
    while time.monotonic() < deadline:
        states = list(ServerTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list("state", flat=True))
        peak = max(peak, states.count("Executing"))
        if all(state == "Success" for state in states):
            break
        time.sleep(0.05)
    assert [ServerTask.objects.get(pk=t.pk).state for t in tasks] == ["Success"] * 5
    assert peak == 2
    started = [ServerTask.objects.get(pk=t.pk).started for t in tasks]
    assert started[2] > min(started[:2]) and started[4] > started[2]  # queued ones wait their turn, oldest first


def test_the_health_queue_does_not_wait_behind_deployments_at_the_cap(task_runner, administrator, project, production):
    from portal.tasks import ping

    add_step(project, "Hold", "sleep 6; echo done")
    release = deploy.create_release(actor=administrator, project=project)
    tasks = [deploy.deploy_release(actor=administrator, release=release, environment=production).task for _ in range(4)]
    ids = [t.pk for t in tasks]

    def states():
        return list(ServerTask.objects.filter(pk__in=ids).order_by("pk").values_list("state", flat=True))

    wait_until(lambda: states().count("Executing") == 2, timeout=60, what="two deployments Executing at the cap")
    # The node is at its cap with two deployments queued: a job of the health queue is still answered at once.
    assert ping.delay().get(timeout=10) == "pong"
    assert states() == ["Executing", "Executing", "Queued", "Queued"]

    def all_succeeded() -> bool:
        now = states()
        assert now.count("Executing") <= 2, now  # never over the cap while they finish
        return now == ["Success"] * 4

    wait_until(all_succeeded, timeout=90, what="all four deployments Success")
