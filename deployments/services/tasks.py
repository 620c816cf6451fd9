"""Server tasks: queue, claim, log, finish. Every transition is compare-and-set."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as dt_timezone
import threading
import time

from django.db import transaction
from django.utils import timezone

from deployments.models import ActivityNode, ServerTask, TaskLogLine
from deployments.services import logstore, logstream
from portal.models import Space, User

State = ServerTask.State

# A running task refreshes its heartbeat; a task Executing without one lost its server node.
HEARTBEAT_SECONDS = 10
HEARTBEAT_TTL = 45


def heartbeat(task_id: int, alive: bool = True) -> None:
    from infrastructure.transports.polling import redis_client

    key = f"reef:task:{task_id}:alive"
    if alive:
        redis_client().set(key, 1, ex=HEARTBEAT_TTL)
    else:
        redis_client().delete(key)


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
    from infrastructure.transports.polling import redis_client

    return bool(redis_client().exists(f"reef:task:{task_id}:alive"))


def queue_server_task(*, space: Space, name: str, description: str, arguments: dict, created_by: User | None,
                      celery_task, project=None, environment=None, pools=()) -> ServerTask:
    """Create a Queued task and send its id to Celery once the transaction commits."""
    task = ServerTask.objects.create(space=space, name=name, description=description, arguments=arguments, created_by=created_by,
                                     project=project, environment=environment)
    if pools:
        task.worker_pools.set(pools)
    transaction.on_commit(lambda: celery_task.delay(task.pk))
    return task


def claim_server_task(task_id: int) -> ServerTask | None:
    """Queued → Executing, once: a redelivered Celery message finds nothing to claim and does nothing."""
    claimed = ServerTask.objects.filter(pk=task_id, state=State.QUEUED, pending_interruption="").update(
        state=State.EXECUTING, started=timezone.now(), server_node=socket.gethostname())
    if not claimed:
        return None
    task = ServerTask.objects.get(pk=task_id)
    logstream.publish_state(task)
    return task


def finish_server_task(*, task: ServerTask, state: str, error_message: str = "", has_warnings: bool = False) -> ServerTask:
    ServerTask.objects.filter(pk=task.pk, state__in=[State.EXECUTING, State.CANCELING]).update(
        state=state, completed=timezone.now(), error_message=error_message[:5000], has_warnings=has_warnings)
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def cancel_server_task(*, task: ServerTask, actor: User | None) -> ServerTask:
    """Queued ➜ Canceled at once; Executing ➜ Cancelling, and its orchestrator kills the scripts and ends it Canceled."""
    from deployments.models import WorkerLease

    if ServerTask.objects.filter(pk=task.pk, state=State.QUEUED).update(
            state=State.CANCELED, completed=timezone.now(), cancel_requested=True, error_message="Canceled before it started."):
        WorkerLease.objects.filter(task=task).delete()
    else:
        ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING).update(state=State.CANCELING, cancel_requested=True)
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def store_lines(batch: list[TaskLogLine]) -> None:
    """One INSERT per batch: the lines become chunks (deployments.services.logstore; hot path: every line of every task)."""
    logstore.store_lines(batch)


class TaskLog:
    """A task's log: numbered, masked lines under the nodes of its activity tree, stored in batches.

    Thread-safe: a task's parallel invocations write to one TaskLog. `publish` hooks (live streaming)
    see each stored batch and each node change.
    """

    MASK = "********"
    publish_hooks: list = [logstream.publish]

    def __init__(self, task: ServerTask, sensitive_values: list[str] | tuple = ()):
        self.task = task
        self.lock = threading.RLock()
        self.pending: list[TaskLogLine] = []
        self.last_flush = time.monotonic()
        self.sensitive = sorted({v for v in sensitive_values if v}, key=len, reverse=True)
        last = logstore.last_sequence(task.pk)
        self.next_sequence = 0 if last is None else last + 1
        if self.next_sequence == 0 and not ActivityNode.objects.filter(task=task).exists():
            logstream.forget(task.pk)

    def mask(self, text: str) -> str:
        for value in self.sensitive:
            text = text.replace(value, self.MASK)
        return text

    def add_sensitive(self, values) -> None:
        with self.lock:
            self.sensitive = sorted(set(self.sensitive) | {v for v in values if v}, key=len, reverse=True)

    def write(self, text: str, category: str = TaskLogLine.Category.INFO, node: ActivityNode | None = None,
              occurred=None) -> None:
        # PostgreSQL refuses NUL in text: a script printing binary output must not lose the batch.
        text = str(text).replace("\x00", "\ufffd")
        occurred, node_id = occurred or datetime.now(dt_timezone.utc), node.pk if node is not None else None
        with self.lock:
            for line in self.mask(text).splitlines() or [""]:
                self.pending.append(TaskLogLine(task_id=self.task.pk, node_id=node_id, sequence=self.next_sequence, category=category,
                                                text=line, occurred=occurred))
                self.next_sequence += 1
            # A flush is one chunk INSERT and one stream entry: large batches, but never older than 50 ms.
            if len(self.pending) >= 2000 or time.monotonic() - self.last_flush > 0.05:
                self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending, self.last_flush = self.pending, [], time.monotonic()
            if batch:
                try:
                    store_lines(batch)
                except Exception:
                    # Kept for the next flush, in order: a failed INSERT (one statement, all or nothing) leaves
                    # no hole in the sequence for readers to wait at.
                    self.pending = batch + self.pending
                    raise
                for hook in self.publish_hooks:
                    hook(self.task, lines=batch)

    # The activity tree ------------------------------------------------------------------------

    def node(self, name: str, parent: ActivityNode | None = None) -> ActivityNode:
        node = ActivityNode.objects.create(task=self.task, parent=parent, name=self.mask(name)[:300])
        self._changed(node)
        return node

    def start(self, node: ActivityNode) -> None:
        node.status, node.started = ActivityNode.Status.RUNNING, timezone.now()
        node.save(update_fields=["status", "started"])
        self._changed(node)

    def finish(self, node: ActivityNode, status: str) -> None:
        self.flush()
        node.status, node.ended = status, timezone.now()
        node.started = node.started or node.ended
        node.save(update_fields=["status", "started", "ended"])
        self._changed(node)

    def _changed(self, node: ActivityNode) -> None:
        for hook in self.publish_hooks:
            hook(self.task, node=node)


def fail_orphaned_tasks(grace_seconds: int = 2 * HEARTBEAT_TTL) -> list[int]:
    """Tasks left Executing by a server node that died (no heartbeat): failed, with a message saying so."""
    from deployments.models import WorkerLease

    failed = []
    started_before = timezone.now() - timedelta(seconds=grace_seconds)
    for task in ServerTask.objects.filter(state__in=[State.EXECUTING, State.CANCELING], started__lt=started_before):
        if has_heartbeat(task.pk):
            continue
        message = (f"The server node {task.server_node or '(unknown)'} that ran this task stopped without finishing it, "
                   "so the task was failed and its workers released. Re-run it when you are ready.")
        log = TaskLog(task)
        log.write(message, TaskLogLine.Category.FATAL)
        log.flush()
        finish_server_task(task=task, state=State.FAILED, error_message=message)
        WorkerLease.objects.filter(task=task).delete()
        failed.append(task.pk)
    # A lease never outlives its task, however the task ended.
    WorkerLease.objects.filter(task__state__in=ServerTask.FINAL_STATES).delete()
    return failed


def server_tasks_visible_to(user: User):
    from portal.permissions import Permission
    from portal.services.access import has_permission, spaces_visible_to

    spaces = [s for s in spaces_visible_to(user) if has_permission(user, Permission.TASK_VIEW, space=s)]
    return ServerTask.objects.filter(space__in=spaces).select_related("space", "created_by")


def filter_server_tasks(tasks, params) -> tuple:
    """Octopus's task filters, for the tasks page and /api/tasks: states, project, environment, worker pool,
    queued dates. Returns (queryset, {parameter: reason} for what could not be read)."""
    from datetime import date

    from deployments.models import Environment, Project
    from infrastructure.models import WorkerPool

    errors = {}
    if params.get("states"):
        states = params["states"].split(",")
        if set(states) - set(State.values):
            errors["states"] = f"Unknown state: {', '.join(sorted(set(states) - set(State.values)))}."
        tasks = tasks.filter(state__in=states)
    for name, model, field in (("project", Project, "project"), ("environment", Environment, "environment"),
                               ("workerPool", WorkerPool, "worker_pools")):
        if params.get(name):
            pk = model.pk_from_octopus_id(params[name])
            if pk is None:
                errors[name] = f"Not an id of a {model.__name__}: {params[name]!r}."
            tasks = tasks.filter(**{field: pk or 0})
    for name, lookup in (("fromQueuedDate", "queued__date__gte"), ("toQueuedDate", "queued__date__lte")):
        if params.get(name):
            try:
                tasks = tasks.filter(**{lookup: date.fromisoformat(params[name][:10])})
            except ValueError:
                errors[name] = "A date such as 2026-11-23."
    if params.get("name"):
        tasks = tasks.filter(name=params["name"])
    return tasks.distinct(), errors


def apply_log_retention(now=None) -> int:
    """Deletes the logs of tasks that ended more than REEF_TASK_LOG_RETENTION_DAYS ago (the tasks stay)."""
    from django.conf import settings

    days = settings.REEF_TASK_LOG_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = ServerTask.objects.filter(completed__lt=cutoff, log_chunks__isnull=False).values_list("pk", flat=True).distinct()
    deleted = 0
    for task_id in list(expired[:1000]):
        deleted += logstore.delete_log(task_id)
        logstream.forget(task_id)
    return deleted
