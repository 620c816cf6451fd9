"""What the deployments pages share: lookups that 404 outside the space, and the URLs they redirect to."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse

from deployments.models import Project, Runbook
from servertasks.models import ServerTask


def get_project_in_space(space, pk: int) -> Project:
    return get_object_or_404(Project, pk=pk, space=space)


def project_url(project: Project, name: str = "project", *args) -> str:
    return reverse(name, args=[project.space.octopus_id, project.pk, *args])


def space_url(space, name: str, *args) -> str:
    return reverse(name, args=[space.octopus_id, *args])


def task_url(task: ServerTask) -> str:
    return reverse("task", args=[task.space.octopus_id, task.pk])


def steps_url(project: Project, runbook: Runbook | None) -> str:
    """The prefix under which a process's steps live: `{{ steps_url }}{{ step.pk }}/`."""
    return project_url(project, "runbook", runbook.pk) + "steps/" if runbook else project_url(project) + "steps/"


def reason(error: ValidationError | PermissionDenied) -> str:
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
