"""What a deployment's server task holds while it runs: worker leases, artifacts, interruptions and
running scripts (the tasks themselves and their logs are in servertasks.models)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from infrastructure.models import Worker
from portal.models import OctopusIdMixin, Space
from servertasks.models import ActivityNode, ServerTask


class WorkerLease(models.Model):
    """Which task holds which worker, recorded against the task and deleted however the task ends."""

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="leases")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="leases")
    step_name = models.CharField(max_length=200)
    rule = models.CharField(max_length=300, help_text="why this worker: the selection rule, in words")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class Artifact(OctopusIdMixin, models.Model):
    """A file a script created with new_octopusartifact, collected into the task."""

    ID_PREFIX = "Artifacts"

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    content = models.BinaryField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Interruption(OctopusIdMixin, models.Model):
    """A manual intervention or a guided failure waiting for (or answered by) someone: Octopus's
    InterruptionResource."""

    ID_PREFIX = "Interruptions"

    class Type(models.TextChoices):
        MANUAL = "ManualIntervention"
        GUIDED_FAILURE = "GuidedFailure"

    class Result(models.TextChoices):
        PROCEED = "Proceed"
        ABORT = "Abort"
        RETRY = "Retry"
        IGNORE = "Ignore"
        FAIL = "Fail"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="interruptions")
    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="interruptions")
    type = models.CharField(max_length=30, choices=Type.choices)
    title = models.CharField(max_length=500)
    instructions = models.TextField(blank=True)
    step_index = models.PositiveIntegerField()
    node = models.ForeignKey(ActivityNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    responsible_team_ids = models.JSONField(default=list, blank=True)
    responsible_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    is_pending = models.BooleanField(default=True)
    result = models.CharField(max_length=10, choices=Result.choices, blank=True)
    note = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["task", "is_pending"])]

    def __str__(self) -> str:
        return self.title

    @property
    def results(self) -> list[str]:
        if self.type == self.Type.MANUAL:
            return [self.Result.PROCEED, self.Result.ABORT]
        return [self.Result.RETRY, self.Result.IGNORE, self.Result.FAIL]


class RunningScript(models.Model):
    """A script a task started on a worker, recorded when it starts, so that whoever ends the task (its
    own node, or another one after the node died) can cancel it on the worker."""

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="running_scripts")
    worker = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="empty: the built-in worker",
    )
    ticket = models.CharField(max_length=100)
    started = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
