"""Server tasks and their logs. (Environments, projects, releases and deployments come with them.)"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.models import OctopusIdMixin, Space


class ServerTask(OctopusIdMixin, models.Model):
    """One unit of queued work; the row is the truth, Celery only carries its id."""

    ID_PREFIX = "ServerTasks"

    class State(models.TextChoices):
        QUEUED = "Queued"
        EXECUTING = "Executing"
        SUCCESS = "Success"
        FAILED = "Failed"
        CANCELING = "Cancelling"
        CANCELED = "Canceled"
        TIMED_OUT = "TimedOut"

    FINAL_STATES = (State.SUCCESS, State.FAILED, State.CANCELED, State.TIMED_OUT)

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="server_tasks")
    name = models.CharField(max_length=50, help_text="Octopus's task kind: Health, Deploy, AdHocScript, …")
    description = models.CharField(max_length=500)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    arguments = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    queued = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    has_warnings = models.BooleanField(default=False)
    server_node = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-queued", "-id"]
        indexes = [models.Index(fields=["space", "state"])]

    def __str__(self) -> str:
        return self.description

    @property
    def is_completed(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def can_cancel(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.EXECUTING)


class TaskLogLine(models.Model):
    """One line of a task's log, numbered per task so readers can resume after any sequence."""

    class Category(models.TextChoices):
        VERBOSE = "Verbose"
        INFO = "Info"
        HIGHLIGHT = "Highlight"
        WAIT = "Wait"
        WARNING = "Warning"
        ERROR = "Error"
        FATAL = "Fatal"

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="log_lines")
    sequence = models.PositiveIntegerField()
    occurred = models.DateTimeField(default=timezone.now)
    category = models.CharField(max_length=10, choices=Category.choices, default=Category.INFO)
    text = models.TextField()

    class Meta:
        ordering = ["task", "sequence"]
        constraints = [models.UniqueConstraint(fields=["task", "sequence"], name="task_log_sequence_unique")]

    def __str__(self) -> str:
        return self.text
