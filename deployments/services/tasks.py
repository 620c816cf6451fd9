"""Server tasks as deployments see them: cancelling one (its leases, its interruptions), ending one that
started scripts on workers, the backstop for tasks a dead node left Executing, and the task list's filters.
Queueing, claiming, finishing and the task log are servertasks' (servertasks.services)."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.utils import timezone

from deployments.models import Environment, Project, RunningScript, ServerNode, WorkerLease
from deployments.services.interruptions import close_interruptions_of_canceled_task
from deployments.services.nodes import fail_stopped_task, last_node_beat
from infrastructure.models import WorkerPool
from portal.models import User
from servertasks.models import ServerTask
from servertasks.services import logstream
from servertasks.services.database import retrying_db_write
from servertasks.services.tasks import HEARTBEAT_TTL, finish_server_task

State = ServerTask.State


def finish_task_and_forget_scripts(
    *, task: ServerTask, state: str, error_message: str = "", has_warnings: bool = False
) -> ServerTask:
    """Finishes the task, then forgets the scripts it started on workers: they ended with it."""
    task = finish_server_task(task=task, state=state, error_message=error_message, has_warnings=has_warnings)
    retrying_db_write(f"forget the scripts of task {task.pk}", lambda: RunningScript.objects.filter(task=task).delete())
    return task


def cancel_server_task(*, task: ServerTask, actor: User | None) -> ServerTask:
    """Queued ➜ Canceled at once; Executing ➜ Cancelling, and its orchestrator kills the scripts and ends it
    Canceled."""
    if ServerTask.objects.filter(pk=task.pk, state=State.QUEUED).update(
        state=State.CANCELED,
        completed=timezone.now(),
        cancel_requested=True,
        error_message="Canceled before it started.",
    ):
        WorkerLease.objects.filter(task=task).delete()
    elif (
        ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING)
        .exclude(pending_interruption="")
        .update(
            state=State.CANCELED,
            completed=timezone.now(),
            cancel_requested=True,
            pending_interruption="",
            error_message="Canceled while waiting for an interruption to be answered.",
        )
    ):
        close_interruptions_of_canceled_task(task=task)
    else:
        ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING).update(
            state=State.CANCELING, cancel_requested=True
        )
    task.refresh_from_db()
    logstream.publish_state(task)
    return task


def fail_orphaned_tasks(grace_seconds: int = 2 * HEARTBEAT_TTL) -> list[int]:
    """The backstop (Celery beat, every minute): tasks left Executing by a node with no heartbeat in Redis and
    no recent row either. Live task runners fail a dead node's tasks much sooner (nodes.DeadNodeWatch)."""
    failed = []
    started_before = timezone.now() - timedelta(seconds=grace_seconds)
    seen_after = timezone.now() - timedelta(seconds=3 * settings.REEF_NODE_ROW_SECONDS)
    recent = set(
        ServerNode.objects.filter(last_seen__gte=seen_after, stopped__isnull=True).values_list("name", flat=True)
    )
    # A task waiting at an interruption has no server node and no heartbeat, by design.
    for task in ServerTask.objects.filter(
        state__in=[State.EXECUTING, State.CANCELING], started__lt=started_before, pending_interruption=""
    ):
        if task.server_node and (task.server_node in recent or last_node_beat(task.server_node) is not None):
            continue
        reason = f"The server node {task.server_node or '(unknown)'} that ran this task stopped without finishing it"
        if fail_stopped_task(task, reason=reason):
            failed.append(task.pk)
    # A lease never outlives its task, however the task ended.
    WorkerLease.objects.filter(task__state__in=ServerTask.FINAL_STATES).delete()
    return failed


def filter_server_tasks(tasks, params) -> tuple:
    """Octopus's task filters, for the tasks page and /api/tasks: states, project, environment, worker pool,
    queued dates. Returns (queryset, {parameter: reason} for what could not be read)."""
    errors = {}
    if params.get("states"):
        states = params["states"].split(",")
        if set(states) - set(State.values):
            errors["states"] = f"Unknown state: {', '.join(sorted(set(states) - set(State.values)))}."
        tasks = tasks.filter(state__in=states)
    for name, model, field in (
        ("project", Project, "project"),
        ("environment", Environment, "environment"),
        ("workerPool", WorkerPool, "worker_pools"),
    ):
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
