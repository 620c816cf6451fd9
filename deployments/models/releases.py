"""What is deployed or run: releases and their deployments, runbook snapshots and their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.models import OctopusIdMixin
from servertasks.models import ServerTask

from .environments import Environment
from .projects import Channel, Project, Runbook


class Release(OctopusIdMixin, models.Model):
    """A snapshot of a project's process and variables (sensitive values stay encrypted) at a version."""

    ID_PREFIX = "Releases"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=50)
    release_notes = models.TextField(blank=True)
    process_snapshot = models.JSONField(default=list)
    variables_snapshot = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="release_version_unique")]

    def __str__(self) -> str:
        return self.version

    @property
    def space_id(self) -> int:
        return self.project.space_id


class Deployment(OctopusIdMixin, models.Model):
    ID_PREFIX = "Deployments"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    task = models.OneToOneField(ServerTask, on_delete=models.CASCADE, related_name="deployment")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    use_guided_failure = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.release.project.name} {self.release.version} to {self.environment.name}"

    @property
    def space_id(self) -> int:
        return self.environment.space_id


class RunbookRun(OctopusIdMixin, models.Model):
    ID_PREFIX = "RunbookRuns"

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="runs")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="runbook_runs")
    task = models.OneToOneField(ServerTask, on_delete=models.CASCADE, related_name="runbook_run")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    @property
    def space_id(self) -> int:
        return self.environment.space_id


class RunbookSnapshot(OctopusIdMixin, models.Model):
    """A runbook's process and the project's variables frozen under a name; a run uses the published one."""

    ID_PREFIX = "RunbookSnapshots"

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=100)
    notes = models.TextField(blank=True)
    process_snapshot = models.JSONField(default=list)
    variables_snapshot = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["runbook", "name"], name="runbook_snapshot_name_unique")]

    def __str__(self) -> str:
        return self.name
