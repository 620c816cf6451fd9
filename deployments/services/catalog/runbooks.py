"""Runbooks of a project: named uniquely within it, deleted only while none of their runs is going."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import Project, Runbook
from deployments.services.catalog.editing import record_saved, unique_name
from portal.models import Event, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot
from servertasks.models import ServerTask

RUNBOOK_FIELDS = ["name", "description"]


def create_runbook(*, actor: User, project: Project, name: str, description: str = "") -> Runbook:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    name = unique_name(project.runbooks.all(), name, "runbook")
    runbook = Runbook.objects.create(project=project, name=name, description=description)
    record_saved(
        actor, runbook, {}, RUNBOOK_FIELDS, space=project.space, message=f"Runbook {name} of {project.name} was created"
    )
    return runbook


@transaction.atomic
def update_runbook(*, actor: User, runbook: Runbook, name: str, description: str = "") -> Runbook:
    require_permission(actor, Permission.PROCESS_EDIT, space=runbook.project.space)
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    before = snapshot(runbook, RUNBOOK_FIELDS)
    runbook.name = unique_name(runbook.project.runbooks.all(), name, "runbook", exclude_pk=runbook.pk)
    runbook.description = description
    runbook.save()
    record_saved(actor, runbook, before, RUNBOOK_FIELDS, space=runbook.project.space)
    return runbook


@transaction.atomic
def delete_runbook(*, actor: User, runbook: Runbook) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=runbook.project.space)
    running = runbook.runs.exclude(task__state__in=ServerTask.FINAL_STATES).count()
    if running:
        raise ValidationError(
            f"{runbook.name} is running ({running}); wait for its runs to finish or cancel them first."
        )
    record_event(
        actor=actor,
        category=Event.Category.DELETED,
        document=runbook,
        space=runbook.project.space,
        message=f"Runbook {runbook.name} of {runbook.project.name} was deleted",
    )
    runbook.delete()
