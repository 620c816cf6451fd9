"""Project variables: unique per name and scope; a Sensitive value is stored encrypted."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from deployments.models import Project, Variable
from deployments.services.catalog.editing import record_saved
from infrastructure.models import WorkerPool
from portal.encryption import encrypt
from portal.models import Event, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot

VARIABLE_FIELDS = ["name", "type", "value", "worker_pool", "environments"]

_VARIABLE_NAME_RE = re.compile(r"[^#{}\s][^#{}]{0,199}")


def _variable_errors(
    project: Project,
    name: str,
    type: str,
    worker_pool: WorkerPool | None,
    environments: list,
    variable: Variable | None,
) -> dict[str, list[str]]:
    errors = {}
    if not name:
        errors["name"] = ["Give the variable a name."]
    elif not _VARIABLE_NAME_RE.fullmatch(name):
        errors["name"] = ["A variable name has at most 200 characters, no #, { or }, and does not start with a space."]
    if type not in Variable.Type.values:
        errors["type"] = [f"Choose one of {', '.join(Variable.Type.labels)}."]
    if type == Variable.Type.WORKER_POOL:
        if worker_pool is None:
            errors["worker_pool"] = ["Choose the worker pool this variable selects."]
        elif worker_pool.space_id != project.space_id:
            errors["worker_pool"] = [f"{worker_pool.name} is not a worker pool of {project.space.name}."]
    if any(e.space_id != project.space_id for e in environments):
        errors["environments"] = [f"Scope the variable to environments of {project.space.name}."]
    if not errors:
        scope = sorted(e.pk for e in environments)
        for other in (
            project.variables.filter(name__iexact=name)
            .exclude(pk=variable.pk if variable else None)
            .prefetch_related("environments")
        ):
            if sorted(e.pk for e in other.environments.all()) == scope:
                errors["name"] = [
                    f"{project.name} already has a variable {other.name} with this scope: "
                    "scope it differently, or edit that one."
                ]
    return errors


@transaction.atomic
def save_variable(
    *,
    actor: User,
    project: Project,
    name: str,
    type: str,
    value: str = "",
    worker_pool: WorkerPool | None = None,
    environments=(),
    variable: Variable | None = None,
) -> Variable:
    """Add (variable None) or change a project variable. A Sensitive value is encrypted and never shown again;
    when changing a Sensitive variable, a blank value keeps the stored one."""
    require_permission(actor, Permission.VARIABLE_EDIT, space=project.space)
    if variable is not None:
        variable = Variable.objects.select_for_update().get(pk=variable.pk, project=project)
    name, environments = (name or "").strip(), list(environments)
    errors = _variable_errors(project, name, type, worker_pool, environments, variable)
    if errors:
        raise ValidationError(errors)

    was_sensitive = variable is not None and variable.is_sensitive
    before = (
        snapshot(variable, VARIABLE_FIELDS, frozenset({"value"}) if was_sensitive else frozenset()) if variable else {}
    )
    variable = variable or Variable(project=project)
    variable.name, variable.type = name, type
    variable.worker_pool = worker_pool if type == Variable.Type.WORKER_POOL else None
    if type == Variable.Type.SENSITIVE:
        if value or not was_sensitive:
            variable.value = encrypt(value or "")
    elif type == Variable.Type.WORKER_POOL:
        variable.value = worker_pool.octopus_id
    else:
        variable.value = value or ""
    variable.save()
    variable.environments.set(environments)
    Project.objects.filter(pk=project.pk).update(variable_set_version=F("variable_set_version") + 1)
    secret = frozenset({"value"}) if variable.is_sensitive else frozenset()
    record_saved(
        actor,
        variable,
        before,
        VARIABLE_FIELDS,
        secret,
        space=project.space,
        message=f"Variable {name} of {project.name} was {'changed' if before else 'added'}",
    )
    return variable


@transaction.atomic
def delete_variable(*, actor: User, variable: Variable) -> None:
    require_permission(actor, Permission.VARIABLE_EDIT, space=variable.project.space)
    record_event(
        actor=actor,
        category=Event.Category.DELETED,
        document=variable,
        space=variable.project.space,
        message=f"Variable {variable.name} of {variable.project.name} was deleted",
    )
    variable.delete()
    Project.objects.filter(pk=variable.project_id).update(variable_set_version=F("variable_set_version") + 1)
