"""Server tasks: queue, claim, keep alive, finish; who may see them; how long their logs are kept.
Every transition is compare-and-set."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.models import Space, User
from portal.permissions import Permission
from portal.redis import redis_client
from portal.services.access import has_permission, spaces_visible_to
from servertasks.models import ServerTask
from servertasks.services import logstore, logstream
from servertasks.services.database import retrying_db_write

State = ServerTask.State
logger = logging.getLogger(__name__)

# A running task refreshes its heartbeat; a task Executing without one lost its server node.
HEARTBEAT_SECONDS = 10
HEARTBEAT_TTL = 45


def heartbeat(task_id: int, alive: bool = True) -> None:
    key = f"reef:task:{task_id}:alive"
    try:
        if alive:
            redis_client().set(key, 1, ex=HEARTBEAT_TTL)
        else:
            redis_client().delete(key)
    except redis.RedisError as error:
        # Liveness is judged by the node's heartbeat (deployments.services.nodes); a missed task beat only
        # delays a viewer.
        logger.warning("Could not refresh the heartbeat of task %s: %s", task_id, error)


@contextmanager
def keeping_alive(task_id: int):
    """Refreshes the task's heartbeat from a thread while the block runs."""
    stop = threading.Event()

    def beat():
        while True:
            heartbeat(task_id)
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{task_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        heartbeat(task_id, alive=False)


def has_heartbeat(task_id: int) -> bool:
    return bool(redis_client().exists(f"reef:task:{task_id}:alive"))


def queue_server_task(
    *,
    space: Space,
    name: str,
    description: str,
    arguments: dict,
    created_by: User | None,
    celery_task,
    project=None,
    environment=None,
    pools=(),
) -> ServerTask:
    """Create a Queued task and send its id to Celery once the transaction commits."""
    task = ServerTask.objects.create(
        space=space,
        name=name,
        description=description,
        arguments=arguments,
        created_by=created_by,
        project=project,
        environment=environment,
    )
    if pools:
        task.worker_pools.add(*pools)  # a new task has none: nothing to read first
    transaction.on_commit(lambda: celery_task.delay(task.pk))
    return task


def claim_server_task(task_id: int) -> ServerTask | None:
    """Queued → Executing, once: a redelivered Celery message finds nothing to claim and does nothing."""
    node, now = settings.REEF_NODE_NAME, timezone.now()
    attempts = 0

    def claim() -> bool:
        nonlocal attempts
        attempts += 1
        # A task resuming after an interruption keeps its StartTime.
        if ServerTask.objects.filter(pk=task_id, state=State.QUEUED, pending_interruption="").update(
            state=State.EXECUTING, started=Coalesce("started", Value(now)), server_node=node
        ):
            return True
        # Only a retry after a lost answer may find its own claim; a first attempt that finds the task
        # Executing is a redelivered message (a Redis restart does that) and must not run it twice. A first
        # run's claim is known by its start time; a resumed task's kept its earlier one.
        return (
            attempts > 1
            and ServerTask.objects.filter(
                Q(started=now) | Q(arguments__has_key="Resume"), pk=task_id, state=State.EXECUTING, server_node=node
            ).exists()
        )

    if not retrying_db_write(f"claim task {task_id}", claim):
        return None
    task = ServerTask.objects.select_related("space", "project").get(pk=task_id)  # the orchestrator reads both
    logstream.publish_state(task, new_stream=task.started == now)
    return task


def finish_server_task(
    *, task: ServerTask, state: str, error_message: str = "", has_warnings: bool = False
) -> ServerTask:
    """Executing or Cancelling → a final state, once. Whoever ran scripts for the task forgets them after."""
    completed = timezone.now()
    retrying_db_write(
        f"finish task {task.pk}",
        lambda: ServerTask.objects.filter(pk=task.pk, state__in=[State.EXECUTING, State.CANCELING]).update(
            state=state, completed=completed, error_message=error_message[:5000], has_warnings=has_warnings
        ),
    )
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def server_tasks_visible_to(user: User):
    spaces = [s for s in spaces_visible_to(user) if has_permission(user, Permission.TASK_VIEW, space=s)]
    return ServerTask.objects.filter(space__in=spaces).select_related("space", "created_by")


def apply_log_retention(now=None) -> int:
    """Deletes the logs of tasks that ended more than REEF_TASK_LOG_RETENTION_DAYS ago (the tasks stay)."""
    days = settings.REEF_TASK_LOG_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = (
        ServerTask.objects.filter(completed__lt=cutoff, log_chunks__isnull=False)
        .values_list("pk", flat=True)
        .distinct()
    )
    deleted = 0
    for task_id in list(expired[:1000]):
        deleted += logstore.delete_log(task_id)
        logstream.forget(task_id)
    return deleted
