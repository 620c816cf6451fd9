"""Server nodes: each node's name and heartbeat, the reaper of a dead node's tasks, and the one scheduler.

A node (settings.REEF_NODE_NAME) is the task runner and its siblings on one machine. Its task runner
beats into Redis every REEF_NODE_HEARTBEAT_SECONDS with a TTL (`<prefix>:node:<name>:alive`, the time of
the beat) and into its ServerNode row about once a minute (the Nodes page). From the same thread it
watches the other nodes: the tasks of a node whose beat has been gone for longer than the TTL, as seen
by a live node that could read Redis all that time, are failed, their scripts cancelled on the workers
and their leases released. A Redis restart loses every beat for a moment: the live nodes beat again
well within the TTL, so a restart never fails a task.

A starting node fails the tasks it owned at once (`reap_tasks_of_this_node`): whatever ran them in
the process that stopped is gone, and scripts are not assumed idempotent, so nothing is resumed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from deployments.models import RunningScript, ServerNode, WorkerLease
from infrastructure.tasks import run_health_check_task
from infrastructure.transports import TransportError, transport_for
from portal.redis import redis_client
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstream
from servertasks.services import tasks as server_tasks
from servertasks.services.database import db_connection_lost, reopen_db_connection, retrying_db_write
from servertasks.services.tasklog import TaskLog

logger = logging.getLogger(__name__)

State = ServerTask.State
HEALTH = "Health"  # health checks run from the health queue; every other kind from the server task queue


def scheduler_key() -> str:
    # Under the Reef's Redis prefix: test runs sharing one Redis never hold each other's lease.
    return f"{settings.REEF_STREAM_PREFIX}:scheduler:lease"


def _redis():
    return redis_client()


def node_key(name: str) -> str:
    return f"{settings.REEF_STREAM_PREFIX}:node:{name}:alive"


# Heartbeats ------------------------------------------------------------------------------------


def beat_node(name: str | None = None) -> None:
    _redis().set(node_key(name or settings.REEF_NODE_NAME), f"{time.time():.3f}", ex=settings.REEF_NODE_HEARTBEAT_TTL)


def last_node_beat(name: str) -> float | None:
    """When the node last beat (epoch seconds), or None when its beat is gone."""
    value = _redis().get(node_key(name))
    return float(value) if value else None


def record_node_row(*, stopped: bool = False, started: bool = False) -> None:
    """The node's row on the Nodes page: written at start, at a clean stop, and about once a minute."""
    now = timezone.now()
    values = {"last_seen": now, "max_concurrent_tasks": settings.REEF_TASK_CAP}
    if started:
        values.update(started=now, stopped=None)
    if stopped:
        values["stopped"] = now
    retrying_db_write(
        "record this node",
        lambda: ServerNode.objects.update_or_create(name=settings.REEF_NODE_NAME, defaults=values),
        seconds=30,
    )


class NodeHeartbeat:
    """The task runner's heartbeat thread: beats, writes the row now and then, and reaps dead nodes."""

    def __init__(self):
        self.stop = threading.Event()
        self.watch = DeadNodeWatch()
        self.own = UnfinishedTaskWatch()
        self.thread = threading.Thread(target=self.run, name="node-heartbeat", daemon=True)

    def start(self) -> NodeHeartbeat:
        beat_node()  # before any task is taken: a claimed task always has a live node
        self.thread.start()
        return self

    def run(self) -> None:
        row_at = 0.0
        while not self.stop.is_set():
            try:
                beat_node()
            except redis.RedisError as error:
                logger.warning("Node %s could not beat into Redis: %s", settings.REEF_NODE_NAME, error)
            if time.monotonic() - row_at >= settings.REEF_NODE_ROW_SECONDS:
                try:
                    record_node_row()
                    row_at = time.monotonic()
                except Exception as error:  # noqa: BLE001 - the next beat tries again
                    logger.warning("Node %s could not record its row: %s", settings.REEF_NODE_NAME, error)
                    reopen_db_connection()
            try:
                self.watch.check()
                self.own.check()
                send_lost_tasks_again()
            except Exception as error:  # noqa: BLE001 - the next beat looks again
                logger.warning("Node %s could not look for dead nodes: %s", settings.REEF_NODE_NAME, error)
                if db_connection_lost(error):
                    reopen_db_connection()
            self.stop.wait(settings.REEF_NODE_HEARTBEAT_SECONDS)
        connection.close()

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(5)
        try:
            _redis().delete(node_key(settings.REEF_NODE_NAME))
            record_node_row(stopped=True)
        except Exception as error:  # noqa: BLE001 - stopping anyway
            logger.warning("Node %s could not record its stop: %s", settings.REEF_NODE_NAME, error)


class DeadNodeWatch:
    """Which nodes with unfinished tasks have no beat, and since when, as this node saw it."""

    def __init__(self):
        self.missing_since: dict[str, float] = {}

    def check(self) -> list[int]:
        me = settings.REEF_NODE_NAME
        names = set(
            ServerTask.objects.filter(state__in=[State.EXECUTING, State.CANCELING])
            .exclude(server_node__in=["", me])
            .values_list("server_node", flat=True)
            .distinct()
        )
        now = time.monotonic()
        try:
            alive = {name for name in names if last_node_beat(name) is not None}
        except redis.RedisError:
            self.missing_since.clear()  # blind for a moment: start counting again once Redis answers
            raise
        self.missing_since = {name: self.missing_since.get(name, now) for name in names - alive}
        failed = []
        for name, since in self.missing_since.items():
            if now - since >= settings.REEF_NODE_HEARTBEAT_TTL:
                failed += fail_tasks_of_node(
                    name,
                    reason=f"The server node {name} stopped (no heartbeat for "
                    f"{settings.REEF_NODE_HEARTBEAT_TTL * 2} seconds) while running this task",
                )
        return failed


class UnfinishedTaskWatch:
    """This node's own tasks that nothing here runs any more: Executing on this node, yet their task
    heartbeat (kept by the thread running them) has been gone for longer than its TTL. The node is up but
    cannot finish them (the thread ended on an error it could not record): the task says so."""

    def __init__(self):
        self.missing_since: dict[int, float] = {}

    def check(self) -> list[int]:
        started_before = timezone.now() - timedelta(seconds=server_tasks.HEARTBEAT_TTL)
        ids = set(
            ServerTask.objects.filter(
                server_node=settings.REEF_NODE_NAME,
                state__in=[State.EXECUTING, State.CANCELING],
                started__lt=started_before,
            ).values_list("pk", flat=True)
        )
        now = time.monotonic()
        try:
            silent = {pk for pk in ids if not server_tasks.has_heartbeat(pk)}
        except redis.RedisError:
            self.missing_since.clear()
            raise
        self.missing_since = {pk: self.missing_since.get(pk, now) for pk in silent}
        failed = []
        for pk, since in list(self.missing_since.items()):
            if now - since >= server_tasks.HEARTBEAT_TTL:
                reason = (
                    f"The server node {settings.REEF_NODE_NAME} is running but stopped working on this task without "
                    "finishing it (the thread running it ended; its log on the node says why)"
                )
                failed += fail_tasks_of_node(settings.REEF_NODE_NAME, only=[pk], reason=reason)
        return failed


# Lost messages ---------------------------------------------------------------------------------


def send_lost_tasks_again() -> list[int]:
    """A task's row can outlive its Celery message: Redis killed as the message was sent, or a Redis that keeps
    nothing on disk restarted with it queued. A task Queued longer than REEF_LOST_TASK_SECONDS is sent again,
    once per that period across the cluster; had its message not been lost, the copy finds nothing to claim."""
    from deployments.tasks import run_server_task_task  # cycle: deployments.tasks imports this module

    period = settings.REEF_LOST_TASK_SECONDS
    waiting = ServerTask.objects.filter(
        state=State.QUEUED, pending_interruption="", queued__lt=timezone.now() - timedelta(seconds=period)
    )
    sent = []
    for pk, name in waiting.values_list("pk", "name"):
        if _redis().set(f"{settings.REEF_STREAM_PREFIX}:task:{pk}:sent-again", 1, nx=True, ex=period):
            (run_health_check_task if name == HEALTH else run_server_task_task).delay(pk)
            sent.append(pk)
    if sent:
        logger.warning("Sent again tasks Queued for over %s s (their Celery messages were lost): %s", period, sent)
    return sent


# Reaping ---------------------------------------------------------------------------------------


def reap_tasks_of_this_node(*, server_tasks: bool, health_checks: bool) -> list[int]:
    """At start: the tasks this node's previous process left unfinished are failed at once (the kinds that
    process ran: server tasks, health checks, or both when one worker runs both queues, as `make run` starts it)."""
    kinds = ServerTask.objects.none()
    if server_tasks:
        kinds |= ServerTask.objects.exclude(name=HEALTH)
    if health_checks:
        kinds |= ServerTask.objects.filter(name=HEALTH)
    ids = list(
        kinds.filter(server_node=settings.REEF_NODE_NAME, state__in=[State.EXECUTING, State.CANCELING]).values_list(
            "pk", flat=True
        )
    )
    if not ids:
        return []
    process = "task runner" if server_tasks else "Celery worker"
    return fail_tasks_of_node(
        settings.REEF_NODE_NAME,
        only=ids,
        reason=f"The server node {settings.REEF_NODE_NAME} restarted (its {process} stopped) while running this task",
    )


def fail_tasks_of_node(name: str, *, reason: str, only: list[int] | None = None) -> list[int]:
    tasks = ServerTask.objects.filter(server_node=name, state__in=[State.EXECUTING, State.CANCELING])
    if only is not None:
        tasks = tasks.filter(pk__in=only)
    failed = [task.pk for task in tasks if fail_stopped_task(task, reason=reason)]
    if failed:
        logger.warning("Failed %s task(s) of the stopped server node %s: %s", len(failed), name, failed)
    return failed


def fail_stopped_task(task: ServerTask, *, reason: str) -> bool:
    """Fails one task whose node stopped (compare-and-set: a task that ended meanwhile is left alone), cancels
    its scripts on the workers and releases its leases."""
    message = (
        f"{reason}, so the task was failed, its scripts cancelled and its workers released. "
        "Re-run it when you are ready."
    )
    scripts = list(RunningScript.objects.filter(task=task).select_related("worker", "worker__machine_policy"))
    now = timezone.now()
    if not retrying_db_write(
        f"fail task {task.pk}",
        lambda: ServerTask.objects.filter(pk=task.pk, state__in=[State.EXECUTING, State.CANCELING]).update(
            state=State.FAILED, completed=now, error_message=message
        ),
    ):
        return False
    task.refresh_from_db()
    logstream.publish_state(task)
    retrying_db_write(
        "end the task's running nodes",
        lambda: ActivityNode.objects.filter(task=task, status=ActivityNode.Status.RUNNING).update(
            status=ActivityNode.Status.FAILED, ended=now
        ),
    )
    log = TaskLog(task)
    log.write(message, TaskLogLine.Category.FATAL)
    log.flush(wait=True)
    retrying_db_write("release the task's leases", lambda: WorkerLease.objects.filter(task=task).delete())
    cancel_scripts(task, scripts)
    return True


# Scripts a task started ------------------------------------------------------------------------


def record_running_script(task: ServerTask, worker, ticket: str) -> None:
    """Called by the orchestrator right after a script started, so it can be cancelled should the node die."""
    retrying_db_write(
        "record a running script", lambda: RunningScript.objects.create(task=task, worker=worker, ticket=ticket)
    )


CANCEL_SECONDS = 30


def cancel_scripts(task: ServerTask, scripts: list[RunningScript]) -> list[str]:
    """Cancels each script on its worker and collects it (the worker removes its work folder), in parallel,
    each bounded by its worker's timeouts. Returns what could not be cancelled, in words, also logged."""
    scripts = [s for s in scripts if s.worker is not None]  # the built-in worker's scripts died with their node
    if not scripts:
        return []

    def cancel(script: RunningScript) -> str | None:
        try:
            transport = transport_for(script.worker)
            transport.call("CancelScript", {"Ticket": script.ticket})
            deadline = time.monotonic() + CANCEL_SECONDS
            while time.monotonic() < deadline:
                status = transport.call(
                    "GetStatus", {"Ticket": script.ticket, "AfterSequence": 1 << 62, "WaitSeconds": 1}
                )
                if status.get("State") == "Complete":
                    break
            transport.call("CompleteScript", {"Ticket": script.ticket})
        except TransportError as error:
            return f"Could not cancel the script on {script.worker.name}: {error}"
        except Exception as error:  # noqa: BLE001 - one worker must not keep the others' scripts running
            logger.exception("cancelling script %s on %s", script.ticket, script.worker.name)
            return f"Could not cancel the script on {script.worker.name}: {type(error).__name__}: {error}"
        finally:
            connection.close()
        return None

    with ThreadPoolExecutor(max_workers=min(8, len(scripts)), thread_name_prefix=f"cancel-{task.pk}") as pool:
        problems = [p for p in pool.map(cancel, scripts) if p]
    retrying_db_write(
        "forget the cancelled scripts", lambda: RunningScript.objects.filter(pk__in=[s.pk for s in scripts]).delete()
    )
    if problems:
        log = TaskLog(task)
        for problem in problems:
            log.write(problem, TaskLogLine.Category.WARNING)
        log.flush(wait=True)
    return problems


# The one scheduler -----------------------------------------------------------------------------

SCHEDULER_LEASE_MS = 15_000
_RENEW = (
    """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"""
)
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"""


def scheduler_owner() -> str:
    return f"{settings.REEF_NODE_NAME}:{os.getpid()}"


def hold_scheduler_lease(owner: str) -> bool:
    """Takes the lease when free, renews it when ours: True while this beat may send scheduled jobs."""
    client = _redis()
    if client.eval(_RENEW, 1, scheduler_key(), owner, SCHEDULER_LEASE_MS):
        return True
    return bool(client.set(scheduler_key(), owner, nx=True, px=SCHEDULER_LEASE_MS))


def release_scheduler_lease(owner: str) -> None:
    _redis().eval(_RELEASE, 1, scheduler_key(), owner)


def scheduler_node() -> str | None:
    """The node whose beat holds the scheduler lease now."""
    value = _redis().get(scheduler_key())
    return value.decode().rsplit(":", 1)[0] if value else None


# The Nodes page --------------------------------------------------------------------------------


def nodes_overview() -> list[dict]:
    """Each node with its task cap, running tasks, last heartbeat and whether it runs the scheduler."""
    running = dict(
        ServerTask.objects.filter(state__in=[State.EXECUTING, State.CANCELING])
        .values_list("server_node")
        .annotate(n=Count("pk"))
        .values_list("server_node", "n")
    )
    try:
        scheduler = scheduler_node()
        beats = {node.name: last_node_beat(node.name) for node in ServerNode.objects.all()}
    except redis.RedisError:
        scheduler, beats = None, {}
    rows = []
    for node in ServerNode.objects.all():
        beat = beats.get(node.name)
        rows.append(
            {
                "name": node.name,
                "task_cap": node.max_concurrent_tasks,
                "running_tasks": running.get(node.name, 0),
                "last_heartbeat": datetime.fromtimestamp(beat, tz=UTC) if beat else node.last_seen,
                "is_alive": beat is not None,
                "runs_scheduler": node.name == scheduler,
                "started": node.started,
                "stopped": node.stopped,
            }
        )
    return rows
