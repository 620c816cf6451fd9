"""Server tasks: one unit of queued work each (deployments, runbook runs, health checks, ad-hoc scripts),
with its activity tree and its log, stored in chunks.

The tables keep the names they had when these models lived in deployments (deployments_servertask, …):
the models moved, the data did not."""

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
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    has_warnings = models.BooleanField(default=False)
    server_node = models.CharField(max_length=200, blank=True)
    # What a task is about, for the task list's filters. Named by string: the rows live in the apps above.
    project = models.ForeignKey(
        "deployments.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="server_tasks"
    )
    environment = models.ForeignKey(
        "deployments.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="server_tasks"
    )
    worker_pools = models.ManyToManyField("infrastructure.WorkerPool", blank=True, related_name="server_tasks")
    pending_interruption = models.TextField(blank=True, help_text="a manual intervention waiting for someone")
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        db_table = "deployments_servertask"
        ordering = ["-queued", "-id"]
        indexes = [models.Index(fields=["space", "state"], name="deployments_space_i_f9680f_idx")]

    def __str__(self) -> str:
        return self.description

    @property
    def is_completed(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def can_cancel(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.EXECUTING)

    @property
    def has_pending_interruptions(self) -> bool:
        return bool(self.pending_interruption)

    @property
    def duration(self) -> str:
        """As Octopus words it: "12 seconds", "3 minutes"."""
        if self.started is None:
            return ""
        return duration_in_words(((self.completed or timezone.now()) - self.started).total_seconds())


def duration_in_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    count = int(seconds)
    return f"{count} second{'' if count == 1 else 's'}"


class TaskLogLine:
    """One line of a task's log, numbered per task so readers can resume after any sequence. Lines live in
    memory only: storage keeps them in TaskLogChunk rows (servertasks.services.logstore)."""

    class Category(models.TextChoices):
        VERBOSE = "Verbose"
        INFO = "Info"
        HIGHLIGHT = "Highlight"
        WAIT = "Wait"
        WARNING = "Warning"
        ERROR = "Error"
        FATAL = "Fatal"

    __slots__ = ("task_id", "node_id", "sequence", "occurred", "category", "text")

    def __init__(
        self,
        *,
        sequence: int,
        text: str = "",
        category: str = "Info",
        occurred=None,
        task=None,
        node=None,
        task_id: int | None = None,
        node_id: int | None = None,
    ):
        self.task_id = task.pk if task is not None else task_id
        self.node_id = node.pk if node is not None else node_id
        self.sequence, self.text, self.category = sequence, text, category
        self.occurred = occurred or timezone.now()

    @classmethod
    def of(cls, task_id: int, node_id: int | None, sequence: int, occurred, category: str, text: str) -> TaskLogLine:
        """Positional, no defaults (hot path: every line written or read)."""
        line = cls.__new__(cls)
        line.task_id, line.node_id, line.sequence, line.occurred, line.category, line.text = (
            task_id,
            node_id,
            sequence,
            occurred,
            category,
            text,
        )
        return line

    def __repr__(self) -> str:
        return f"TaskLogLine({self.sequence}, {self.category}, {self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, TaskLogLine) and all(getattr(self, f) == getattr(other, f) for f in self.__slots__)


class TaskLogChunk(models.Model):
    """A node's consecutive lines first_sequence … last_sequence of a task's log, as one row.

    `data` holds a per-line index (microseconds since the epoch, category, end offset) and then the lines'
    UTF-8 text, zlib-compressed when that makes it smaller (servertasks.services.logstore reads and writes it).
    A row per line cost 11× Buildbot's server CPU per line; a chunk costs one row per flush."""

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="log_chunks")
    node = models.ForeignKey("ActivityNode", null=True, blank=True, on_delete=models.CASCADE, related_name="log_chunks")
    first_sequence = models.PositiveIntegerField()
    last_sequence = models.PositiveIntegerField()
    has_warnings = models.BooleanField(default=False, help_text="a Warning or Error line is in this chunk")
    compressed = models.BooleanField(default=False)
    data = models.BinaryField()

    class Meta:
        db_table = "deployments_tasklogchunk"
        ordering = ["task", "first_sequence"]
        constraints = [models.UniqueConstraint(fields=["task", "first_sequence"], name="task_log_chunk_unique")]
        indexes = [models.Index(fields=["task", "last_sequence"], name="task_log_chunk_last")]

    def __str__(self) -> str:
        return f"lines {self.first_sequence}–{self.last_sequence}"

    @property
    def line_count(self) -> int:
        return self.last_sequence - self.first_sequence + 1


class ActivityNode(models.Model):
    """The task's log tree: task ➜ step ➜ action ➜ worker or target, each with its status and times."""

    class Status(models.TextChoices):
        PENDING = "Pending"
        RUNNING = "Running"
        SUCCESS = "Success"
        FAILED = "Failed"
        SKIPPED = "Skipped"
        SUCCESS_WITH_WARNING = "SuccessWithWarning"
        CANCELED = "Canceled"

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="activity_nodes")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    name = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "deployments_activitynode"
        ordering = ["task", "id"]

    def __str__(self) -> str:
        return self.name
