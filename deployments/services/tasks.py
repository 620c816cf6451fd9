"""Server tasks: queue, claim, log, finish. Every transition is compare-and-set."""

from __future__ import annotations

import socket

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from deployments.models import ServerTask, TaskLogLine
from portal.models import Space, User

State = ServerTask.State


def queue_server_task(*, space: Space, name: str, description: str, arguments: dict, created_by: User | None,
                      celery_task) -> ServerTask:
    """Create a Queued task and send its id to Celery once the transaction commits."""
    task = ServerTask.objects.create(space=space, name=name, description=description, arguments=arguments, created_by=created_by)
    transaction.on_commit(lambda: celery_task.delay(task.pk))
    return task


def claim_server_task(task_id: int) -> ServerTask | None:
    """Queued → Executing, once: a redelivered Celery message finds nothing to claim and does nothing."""
    claimed = ServerTask.objects.filter(pk=task_id, state=State.QUEUED).update(
        state=State.EXECUTING, started=timezone.now(), server_node=socket.gethostname())
    return ServerTask.objects.get(pk=task_id) if claimed else None


def finish_server_task(*, task: ServerTask, state: str, error_message: str = "", has_warnings: bool = False) -> ServerTask:
    ServerTask.objects.filter(pk=task.pk, state__in=[State.EXECUTING, State.CANCELING]).update(
        state=state, completed=timezone.now(), error_message=error_message[:5000], has_warnings=has_warnings)
    task.refresh_from_db()
    return task


class TaskLog:
    """Appends numbered lines to a task's log in batches (one INSERT per batch, not per line)."""

    def __init__(self, task: ServerTask):
        self.task = task
        self.pending: list[TaskLogLine] = []
        self.next_sequence = (TaskLogLine.objects.filter(task=task).aggregate(m=Max("sequence"))["m"] or -1) + 1

    def write(self, text: str, category: str = TaskLogLine.Category.INFO) -> None:
        for line in str(text).splitlines() or [""]:
            self.pending.append(TaskLogLine(task=self.task, sequence=self.next_sequence, category=category, text=line))
            self.next_sequence += 1

    def flush(self) -> None:
        if self.pending:
            TaskLogLine.objects.bulk_create(self.pending)
            self.pending = []


def server_tasks_visible_to(user: User):
    from portal.permissions import Permission
    from portal.services.access import has_permission, spaces_visible_to

    spaces = [s for s in spaces_visible_to(user) if has_permission(user, Permission.TASK_VIEW, space=s)]
    return ServerTask.objects.filter(space__in=spaces).select_related("space", "created_by")
