"""Server nodes, in process, against the real Redis and PostgreSQL: the Nodes page and who may see it,
the immediate reaper, the dead-node watch that a Redis restart does not fool, the one scheduler lease,
and a task log that keeps its lines through a dropped database connection."""

import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from deployments.models import ServerNode, WorkerLease
from deployments.services import nodes
from infrastructure.models import Worker
from portal.redis import redis_client
from servertasks.models import ActivityNode, ServerTask
from servertasks.services import logstore
from servertasks.services import tasks as server_tasks
from servertasks.services.tasklog import TaskLog

pytestmark = pytest.mark.django_db(transaction=True)


def executing_task(space, node: str, name: str = "AdHocScript") -> ServerTask:
    return ServerTask.objects.create(
        space=space,
        name=name,
        description=f"{name} on {node}",
        state="Executing",
        started=timezone.now(),
        server_node=node,
    )


def test_the_nodes_page_shows_each_node_with_its_task_cap_running_tasks_and_heartbeat(
    page_client, administrator, space
):
    alive, dead = f"alive-{uuid.uuid4().hex[:6]}", f"dead-{uuid.uuid4().hex[:6]}"
    ServerNode.objects.create(name=alive, max_concurrent_tasks=7, last_seen=timezone.now())
    ServerNode.objects.create(name=dead, max_concurrent_tasks=3, last_seen=timezone.now())
    nodes.beat_node(alive)
    executing_task(space, alive)
    executing_task(space, alive)
    page = page_client(administrator).get("/configuration/nodes/").content.decode()
    row = page.split(f'data-node="{alive}"')[1].split("</tr>")[0]
    assert "Running" in row and '<td class="text-end">7</td>' in row and '<td class="text-end">2</td>' in row
    assert "Not responding" in page.split(f'data-node="{dead}"')[1].split("</tr>")[0]
    assert "/configuration/nodes/" in page_client(administrator).get("/configuration/").content.decode()


def test_only_people_who_configure_the_server_see_the_nodes(page_client, space_manager, outsider):
    assert page_client(space_manager).get("/configuration/nodes/").status_code == 403
    assert page_client(outsider).get("/configuration/nodes/").status_code == 403


def test_a_starting_node_fails_the_tasks_it_left_at_once(space, settings):
    settings.REEF_NODE_NAME = me = f"me-{uuid.uuid4().hex[:6]}"
    mine, health, other = (
        executing_task(space, me),
        executing_task(space, me, "Health"),
        executing_task(space, "someone-else"),
    )
    ActivityNode.objects.create(task=mine, name="step", status="Running")
    assert nodes.reap_tasks_of_this_node(server_tasks=True, health_checks=False) == [mine.pk]
    mine.refresh_from_db()
    assert mine.state == "Failed" and f"The server node {me} restarted (its task runner stopped)" in mine.error_message
    assert (
        sum(line.category == "Fatal" and "restarted" in line.text for line in logstore.iter_lines(task_id=mine.pk)) == 1
    )
    assert not ActivityNode.objects.filter(task=mine, status="Running").exists()
    # Health checks are reaped by the process that runs the health queue; another node's tasks are never touched.
    assert ServerTask.objects.get(pk=health.pk).state == "Executing"
    assert nodes.reap_tasks_of_this_node(server_tasks=False, health_checks=True) == [health.pk]
    assert ServerTask.objects.get(pk=other.pk).state == "Executing"


def test_a_node_whose_one_worker_runs_both_queues_fails_both_kinds_it_left(space, settings):
    # `make run` starts one worker for server tasks and health checks: its restart leaves neither kind Executing.
    settings.REEF_NODE_NAME = me = f"me-{uuid.uuid4().hex[:6]}"
    mine, health = executing_task(space, me), executing_task(space, me, "Health")
    assert sorted(nodes.reap_tasks_of_this_node(server_tasks=True, health_checks=True)) == sorted([mine.pk, health.pk])
    for task in (mine, health):
        task.refresh_from_db()
        assert (
            task.state == "Failed" and f"The server node {me} restarted (its task runner stopped)" in task.error_message
        )


@override_settings(REEF_NODE_HEARTBEAT_TTL=1)
def test_a_dead_nodes_tasks_are_failed_and_its_workers_released_once_its_beat_is_gone(space):
    name = f"gone-{uuid.uuid4().hex[:6]}"
    task = executing_task(space, name)
    from infrastructure.services.policies import ensure_default_machine_policy

    worker = Worker.objects.create(
        space=space,
        name="w",
        communication_style="TentaclePassive",
        uri="https://127.0.0.1:1/",
        machine_policy=ensure_default_machine_policy(space),
    )
    WorkerLease.objects.create(task=task, worker=worker, step_name="s", rule="r")
    watch = nodes.DeadNodeWatch()
    nodes.beat_node(name)
    assert watch.check() == []
    time.sleep(1.2)  # the beat expires
    assert watch.check() == []  # seen missing: not yet failed
    time.sleep(1.1)
    assert watch.check() == [task.pk]
    task.refresh_from_db()
    assert task.state == "Failed" and f"The server node {name} stopped" in task.error_message
    assert not WorkerLease.objects.filter(task=task).exists()


@override_settings(REEF_NODE_HEARTBEAT_TTL=1)
def test_a_moment_without_beats_such_as_a_redis_restart_fails_nothing(space):
    name = f"live-{uuid.uuid4().hex[:6]}"
    task = executing_task(space, name)
    watch = nodes.DeadNodeWatch()
    nodes.beat_node(name)
    watch.check()
    nodes._redis().delete(nodes.node_key(name))  # Redis restarted without its data
    assert watch.check() == []
    time.sleep(0.5)
    nodes.beat_node(name)  # the live node beats again within its TTL
    time.sleep(0.7)
    assert watch.check() == []
    assert ServerTask.objects.get(pk=task.pk).state == "Executing"


def test_one_beat_at_a_time_holds_the_scheduler_lease(settings):
    settings.REEF_STREAM_PREFIX = f"reef-test-lease-{uuid.uuid4().hex[:6]}"
    assert nodes.hold_scheduler_lease("a:1") and nodes.hold_scheduler_lease("a:1")  # taken, then renewed
    assert not nodes.hold_scheduler_lease("b:2")
    assert nodes.scheduler_node() == "a"
    nodes.release_scheduler_lease("b:2")  # not its lease: nothing happens
    assert not nodes.hold_scheduler_lease("b:2")
    nodes.release_scheduler_lease("a:1")
    assert nodes.hold_scheduler_lease("b:2") and nodes.scheduler_node() == "b"
    nodes._redis().delete(nodes.scheduler_key())


def test_a_task_log_keeps_every_line_once_through_a_dropped_database_connection(space):
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    task = executing_task(space, "here")
    log = TaskLog(task)
    for n in range(1, 51):
        log.write(f"line {n}")
    log.flush()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], dbname="postgres", autocommit=True
    ) as pg:
        assert pg.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    for n in range(51, 101):
        log.write(f"line {n}")
    log.flush(wait=True)
    texts = [line.text for line in logstore.iter_lines(task_id=task.pk)]
    assert texts == [f"line {n}" for n in range(1, 101)]


def test_a_task_nothing_on_its_live_node_runs_any_more_is_failed_saying_so(space, settings, monkeypatch):
    settings.REEF_NODE_NAME = me = f"me-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(server_tasks, "HEARTBEAT_TTL", 1)
    abandoned = executing_task(space, me)
    running = executing_task(space, me)
    ServerTask.objects.filter(pk__in=[abandoned.pk, running.pk]).update(started=timezone.now() - timedelta(minutes=2))
    watch = nodes.UnfinishedTaskWatch()
    server_tasks.heartbeat(running.pk)
    assert watch.check() == []
    time.sleep(1.1)
    server_tasks.heartbeat(running.pk)  # its thread keeps beating
    assert watch.check() == [abandoned.pk]
    abandoned.refresh_from_db()
    assert abandoned.state == "Failed" and "is running but stopped working on this task" in abandoned.error_message
    assert ServerTask.objects.get(pk=running.pk).state == "Executing"
    server_tasks.heartbeat(running.pk, alive=False)


def test_a_task_whose_celery_message_was_lost_is_sent_again_once_per_period(space):
    def queued(name: str, seconds_ago: float, **fields) -> ServerTask:
        return ServerTask.objects.create(
            space=space,
            name=name,
            description=name,
            queued=timezone.now() - timezone.timedelta(seconds=seconds_ago),
            **fields,
        )

    lost, health = queued("AdHocScript", 120), queued("Health", 120)
    queued("AdHocScript", 5)  # its message may still be on its way
    queued("Deploy", 120, pending_interruption="Interruptions-1")  # waits for a person, not for Celery
    queued("Deploy", 120, state="Success")
    client = redis_client()
    before = client.llen(settings.REEF_TASK_QUEUE), client.llen(settings.REEF_HEALTH_QUEUE)

    with override_settings(REEF_LOST_TASK_SECONDS=60):
        assert sorted(nodes.send_lost_tasks_again()) == sorted([lost.pk, health.pk])
        assert nodes.send_lost_tasks_again() == []  # once per period, across the cluster
    # Each went to its own queue, where a task runner takes it.
    assert (client.llen(settings.REEF_TASK_QUEUE), client.llen(settings.REEF_HEALTH_QUEUE)) == (
        before[0] + 1,
        before[1] + 1,
    )
    client.delete(settings.REEF_TASK_QUEUE, settings.REEF_HEALTH_QUEUE)
