"""Server tasks: queue, claim, log, finish. Every transition is compare-and-set."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as dt_timezone
import threading
import time

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from deployments.models import ActivityNode, ServerTask, TaskLogLine
from deployments.services import logstore, logstream
from portal.models import Space, User
from tentacle_agent.runner import secret_forms

State = ServerTask.State
logger = logging.getLogger(__name__)

# A running task refreshes its heartbeat; a task Executing without one lost its server node.
HEARTBEAT_SECONDS = 10
HEARTBEAT_TTL = 45


def heartbeat(task_id: int, alive: bool = True) -> None:
    from infrastructure.transports.polling import redis_client

    key = f"reef:task:{task_id}:alive"
    try:
        if alive:
            redis_client().set(key, 1, ex=HEARTBEAT_TTL)
        else:
            redis_client().delete(key)
    except redis.RedisError as error:
        # Liveness is judged by the node's heartbeat (nodes.py); a missed task beat only delays a viewer.
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
    node = settings.REEF_NODE_NAME
    # A task resuming after an interruption keeps its StartTime.
    started = ServerTask.objects.filter(pk=task_id).values_list("started", flat=True).first() or timezone.now()
    attempts = 0

    def claim() -> bool:
        nonlocal attempts
        attempts += 1
        if ServerTask.objects.filter(pk=task_id, state=State.QUEUED, pending_interruption="").update(
                state=State.EXECUTING, started=started, server_node=node):
            return True
        # Only a retry after a lost answer may find its own claim; a first attempt that finds the task
        # Executing is a redelivered message (a Redis restart does that) and must not run it twice.
        return attempts > 1 and ServerTask.objects.filter(pk=task_id, state=State.EXECUTING, server_node=node,
                                                          started=started).exists()

    if not retrying_db_write(f"claim task {task_id}", claim):
        return None
    task = ServerTask.objects.get(pk=task_id)
    logstream.publish_state(task)
    return task


def finish_server_task(*, task: ServerTask, state: str, error_message: str = "", has_warnings: bool = False) -> ServerTask:
    from deployments.models import RunningScript

    completed = timezone.now()
    retrying_db_write(f"finish task {task.pk}", lambda: ServerTask.objects.filter(
        pk=task.pk, state__in=[State.EXECUTING, State.CANCELING]).update(
        state=state, completed=completed, error_message=error_message[:5000], has_warnings=has_warnings))
    retrying_db_write(f"forget the scripts of task {task.pk}", lambda: RunningScript.objects.filter(task=task).delete())
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def cancel_server_task(*, task: ServerTask, actor: User | None) -> ServerTask:
    """Queued ➜ Canceled at once; Executing ➜ Cancelling, and its orchestrator kills the scripts and ends it Canceled."""
    from deployments.models import WorkerLease

    if ServerTask.objects.filter(pk=task.pk, state=State.QUEUED).update(
            state=State.CANCELED, completed=timezone.now(), cancel_requested=True, error_message="Canceled before it started."):
        WorkerLease.objects.filter(task=task).delete()
    elif ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING).exclude(pending_interruption="").update(
            state=State.CANCELED, completed=timezone.now(), cancel_requested=True, pending_interruption="",
            error_message="Canceled while waiting for an interruption to be answered."):
        from deployments.services.interruptions import close_interruptions_of_canceled_task

        close_interruptions_of_canceled_task(task=task)
    else:
        ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING).update(state=State.CANCELING, cancel_requested=True)
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def store_lines(batch: list[TaskLogLine]) -> None:
    """One INSERT per batch: the lines become chunks (deployments.services.logstore; hot path: every line of every task)."""
    logstore.store_lines(batch)


# Database blips ------------------------------------------------------------------------------
# A dropped connection (a database restart, pg_terminate_backend) is re-opened and the write retried.
# Only writes that are safe to repeat come through here.

DB_RETRY_SECONDS = 120


def db_connection_lost(error: Exception) -> bool:
    from django.db import InterfaceError, OperationalError

    return isinstance(error, (OperationalError, InterfaceError))


def reopen_db_connection() -> None:
    """Drops this thread's connection so the next query opens a new one (never inside a transaction)."""
    if not connection.in_atomic_block:
        connection.close()


def retrying_db_write(what: str, write, *, seconds: float = DB_RETRY_SECONDS):
    """Runs `write` until it succeeds, re-opening a lost connection, with backoff (0.2 s doubling to 5 s)."""
    delay, deadline, attempt = 0.2, time.monotonic() + seconds, 1
    while True:
        try:
            return write()
        except Exception as error:
            if not db_connection_lost(error) or connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("Could not %s (attempt %s): %s; retrying on a new connection.", what, attempt, str(error).strip()[:200])
            reopen_db_connection()
            time.sleep(delay)
            delay, attempt = min(delay * 2, 5), attempt + 1


def store_lines_once(batch: list[TaskLogLine]) -> None:
    """store_lines, safe to repeat: a batch the database stored before its answer was lost is not stored twice."""
    try:
        store_lines(batch)
    except IntegrityError:
        reopen_db_connection()
        stored = {line.sequence for line in logstore.iter_lines(task_id=batch[0].task_id, after=batch[0].sequence - 1,
                                                                before=batch[-1].sequence + 1)}
        if not stored:
            raise
        rest = [line for line in batch if line.sequence not in stored]
        if rest:
            store_lines(rest)


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
        self.waiting_for_database = False
        self.last_flush = time.monotonic()
        self.sensitive = sorted({form for v in sensitive_values for form in secret_forms(v)}, key=len, reverse=True)
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
            self.sensitive = sorted(set(self.sensitive) | {form for v in values for form in secret_forms(v)}, key=len, reverse=True)

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

    def flush(self, wait: bool = False) -> None:
        """Stores the pending lines in one statement. When the database is unreachable they wait here, in
        order, for the next flush (a failed statement is all or nothing, so readers never wait at a hole);
        past REEF_LOG_BUFFER_LINES, or with `wait`, the writer waits for the database instead."""
        with self.lock:
            batch, self.pending, self.last_flush = self.pending, [], time.monotonic()
            if not batch:
                return
            try:
                store_lines_once(batch)
            except Exception as error:
                self.pending = batch + self.pending
                if not db_connection_lost(error):
                    raise
                reopen_db_connection()
                if not wait and len(self.pending) < settings.REEF_LOG_BUFFER_LINES:
                    if not self.waiting_for_database:  # said once per outage, not once per flush
                        logger.warning("Task %s: log lines wait in memory for the database (%s).", self.task.pk,
                                       str(error).strip()[:200])
                    self.waiting_for_database = True
                    return
                batch, self.pending = self.pending, []
                retrying_db_write(f"store the log of task {self.task.pk}", lambda: store_lines_once(batch))
            if self.waiting_for_database:
                logger.warning("Task %s: the database is back; the waiting log lines are stored.", self.task.pk)
                self.waiting_for_database = False
            for hook in self.publish_hooks:
                hook(self.task, lines=batch)

    # The activity tree ------------------------------------------------------------------------

    def node(self, name: str, parent: ActivityNode | None = None) -> ActivityNode:
        node = retrying_db_write("add a log node", lambda: ActivityNode.objects.create(
            task=self.task, parent=parent, name=self.mask(name)[:300]))
        self._changed(node)
        return node

    def start(self, node: ActivityNode) -> None:
        node.status, node.started = ActivityNode.Status.RUNNING, timezone.now()
        retrying_db_write("start a log node", lambda: node.save(update_fields=["status", "started"]))
        self._changed(node)

    def finish(self, node: ActivityNode, status: str) -> None:
        self.flush(wait=True)
        node.status, node.ended = status, timezone.now()
        node.started = node.started or node.ended
        retrying_db_write("finish a log node", lambda: node.save(update_fields=["status", "started", "ended"]))
        self._changed(node)

    def _changed(self, node: ActivityNode) -> None:
        for hook in self.publish_hooks:
            hook(self.task, node=node)


def fail_orphaned_tasks(grace_seconds: int = 2 * HEARTBEAT_TTL) -> list[int]:
    """The backstop (Celery beat, every minute): tasks left Executing by a node with no heartbeat in Redis and
    no recent row either. Live task runners fail a dead node's tasks much sooner (nodes.DeadNodeWatch)."""
    from deployments.models import ServerNode, WorkerLease
    from deployments.services.nodes import fail_stopped_task, last_node_beat

    failed = []
    started_before = timezone.now() - timedelta(seconds=grace_seconds)
    seen_after = timezone.now() - timedelta(seconds=3 * settings.REEF_NODE_ROW_SECONDS)
    recent = set(ServerNode.objects.filter(last_seen__gte=seen_after, stopped__isnull=True).values_list("name", flat=True))
    # A task waiting at an interruption has no server node and no heartbeat, by design.
    for task in ServerTask.objects.filter(state__in=[State.EXECUTING, State.CANCELING], started__lt=started_before, pending_interruption=""):
        if task.server_node and (task.server_node in recent or last_node_beat(task.server_node) is not None):
            continue
        reason = f"The server node {task.server_node or '(unknown)'} that ran this task stopped without finishing it"
        if fail_stopped_task(task, reason=reason):
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
