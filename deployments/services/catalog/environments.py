"""Environments: created last in the order, renamed, reordered, and deleted only when nothing uses them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from deployments.models import Environment
from deployments.services.catalog.editing import record_saved, reorder, unique_name
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot

ENVIRONMENT_FIELDS = ["name", "description", "sort_order"]


@transaction.atomic
def create_environment(*, actor: User, space: Space, name: str, description: str = "") -> Environment:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    name = unique_name(Environment.objects.filter(space=space), name, "environment")
    order = (Environment.objects.filter(space=space).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    environment = Environment.objects.create(space=space, name=name, description=description, sort_order=order)
    record_saved(actor, environment, {}, ENVIRONMENT_FIELDS)
    return environment


@transaction.atomic
def update_environment(
    *, actor: User, environment: Environment, name: str, description: str = "", sort_order: int | None = None
) -> Environment:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=environment.space)
    environment = Environment.objects.select_for_update().get(pk=environment.pk)
    before = snapshot(environment, ENVIRONMENT_FIELDS)
    environment.name = unique_name(
        Environment.objects.filter(space=environment.space_id), name, "environment", exclude_pk=environment.pk
    )
    environment.description = description
    if sort_order is not None:
        environment.sort_order = sort_order
    environment.save()
    record_saved(actor, environment, before, ENVIRONMENT_FIELDS)
    return environment


@transaction.atomic
def reorder_environments(*, actor: User, space: Space, ordered_ids: list[int]) -> None:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    ordered = reorder(Environment.objects.filter(space=space), ordered_ids, "environment of the space")
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document_type="Environment",
        space=space,
        message="Environments reordered: " + ", ".join(e.name for e in ordered),
    )


@transaction.atomic
def delete_environment(*, actor: User, environment: Environment) -> None:
    """Refused while deployments, runbook runs, variable scopes or targets (as their only environment) use it:
    deleting a scope would silently widen a variable to every environment."""
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=environment.space)
    users = []
    if deployments := environment.deployments.count():
        users.append(f"{deployments} deployment{'s' if deployments > 1 else ''}")
    if runs := environment.runbook_runs.count():
        users.append(f"{runs} runbook run{'s' if runs > 1 else ''}")
    users += [
        f"the variable {v.name} of {v.project.name} (scoped to it)"
        for v in environment.variables.select_related("project")[:20]
    ]
    users += [
        f"the deployment target {t.name} (its only environment)"
        for t in environment.deployment_targets.all()
        if t.environments.count() == 1
    ]
    if users:
        raise ValidationError(
            f"{environment.name} is in use and cannot be deleted. It is used by: " + "; ".join(users) + "."
        )
    record_event(actor=actor, category=Event.Category.DELETED, document=environment)
    environment.delete()
