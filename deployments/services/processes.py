"""Whole-document writes, as Octopus's API makes them: a deployment or runbook process replaced with all its steps,
a project's variable set replaced with all its variables, a runbook snapshot taken. Each compares the caller's
`Version` with the stored one under a row lock (optimistic concurrency), so of two clients editing the same
version one wins and the other is told both versions; every accepted write raises the Version by one."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import Environment, Project, Runbook, RunbookSnapshot, Step, Variable
from deployments.services import catalog
from deployments.services.deploy import process_snapshot, variables_snapshot
from infrastructure.models import WorkerPool
from portal.models import Event, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event


class VersionConflict(Exception):
    """The document changed since the caller read it."""

    def __init__(self, what: str, sent: int, current: int):
        super().__init__(
            f"The {what} was changed by someone else: you sent Version {sent}, and it is now at Version {current}. "
            "Read it again, apply your change, and save."
        )
        self.sent, self.current = sent, current


def _prefixed(error: ValidationError, prefix: str) -> ValidationError:
    if hasattr(error, "error_dict"):
        return ValidationError({f"{prefix}.{field}": messages for field, messages in error.message_dict.items()})
    return ValidationError({prefix: error.messages})


# Processes ------------------------------------------------------------------------------------------------


@dataclass
class StepSpec:
    """One step as the caller wants it: `step_id` names an existing step to change (None: a new one); `values`
    are catalog.STEP_FIELDS."""

    values: dict
    step_id: int | None = None


def process_version(project: Project, runbook: Runbook | None) -> int:
    return runbook.process_version if runbook is not None else project.process_version


@transaction.atomic
def save_process(
    *, actor: User, project: Project, runbook: Runbook | None = None, version: int, steps: list[StepSpec]
) -> int:
    """Replace the process's steps with `steps`, in order; returns the new Version.

    1. Lock the owner's row and compare versions (409 material when they differ).
    2. Delete the steps not named, change the named ones, add the new ones (each through catalog.save_step, so a page
       and the API follow the same rules), then put them in the given order.
    """
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    owner = (
        Runbook.objects.select_for_update().get(pk=runbook.pk)
        if runbook is not None
        else Project.objects.select_for_update().get(pk=project.pk)
    )
    what = f"process of the runbook {runbook.name}" if runbook is not None else f"deployment process of {project.name}"
    if owner.process_version != version:
        raise VersionConflict(what, version, owner.process_version)
    existing = {step.pk: step for step in Step.objects.filter(project=project, runbook=runbook)}
    unknown = [spec.step_id for spec in steps if spec.step_id is not None and spec.step_id not in existing]
    if unknown:
        raise ValidationError(
            {"steps": [f"Steps-{pk} is not a step of this process; leave Id out to add a step." for pk in unknown]}
        )
    kept = {spec.step_id for spec in steps}
    for pk, step in existing.items():
        if pk not in kept:
            catalog.delete_step(actor=actor, step=step)
    ordered = []
    for index, spec in enumerate(steps):
        try:
            step = catalog.save_step(
                actor=actor, project=project, runbook=runbook, step=existing.get(spec.step_id), **spec.values
            )
        except ValidationError as error:
            raise _prefixed(error, f"steps[{index}]") from None
        ordered.append(step.pk)
    if ordered:
        catalog.reorder_steps(actor=actor, project=project, runbook=runbook, ordered_ids=ordered)
    new_version = version + 1
    type(owner).objects.filter(pk=owner.pk).update(process_version=new_version)
    return new_version


# Variable sets --------------------------------------------------------------------------------------------


@dataclass
class VariableSpec:
    name: str
    type: str = Variable.Type.TEXT
    value: str | None = None
    worker_pool: WorkerPool | None = None
    environments: list[Environment] = field(default_factory=list)
    variable_id: int | None = None


@transaction.atomic
def save_variable_set(*, actor: User, project: Project, version: int, variables: list[VariableSpec]) -> int:
    """Replace the project's variables with `variables`; returns the new Version. A Sensitive variable sent without a
    value keeps the value it has (values are write-only, so a client that read the set cannot send them back)."""
    require_permission(actor, Permission.VARIABLE_EDIT, space=project.space)
    owner = Project.objects.select_for_update().get(pk=project.pk)
    if owner.variable_set_version != version:
        raise VersionConflict(f"variable set of {project.name}", version, owner.variable_set_version)
    existing = {v.pk: v for v in project.variables.all()}
    unknown = [
        spec.variable_id for spec in variables if spec.variable_id is not None and spec.variable_id not in existing
    ]
    if unknown:
        raise ValidationError(
            {
                "variables": [
                    f"Variables-{pk} is not a variable of {project.name}; leave Id out to add one." for pk in unknown
                ]
            }
        )
    kept = {spec.variable_id for spec in variables}
    for pk, variable in existing.items():
        if pk not in kept:
            catalog.delete_variable(actor=actor, variable=variable)
    for index, spec in enumerate(variables):
        try:
            catalog.save_variable(
                actor=actor,
                project=project,
                name=spec.name,
                type=spec.type,
                value=spec.value or "",
                worker_pool=spec.worker_pool,
                environments=spec.environments,
                variable=existing.get(spec.variable_id),
            )
        except ValidationError as error:
            raise _prefixed(error, f"variables[{index}]") from None
    Project.objects.filter(pk=project.pk).update(variable_set_version=version + 1)
    return version + 1


# Runbook snapshots -------------------------------------------------------------------------------------------


@transaction.atomic
def create_runbook_snapshot(
    *, actor: User, runbook: Runbook, name: str = "", notes: str = "", publish: bool = False
) -> RunbookSnapshot:
    """Freeze the runbook's process (packages pinned) and the project's variables; `publish` makes runs use it."""
    project = runbook.project
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    name = (name.strip() if isinstance(name, str) else "") or f"Snapshot {runbook.snapshots.count() + 1}"
    if len(name) > 100:
        raise ValidationError({"name": ["A snapshot name has at most 100 characters."]})
    if runbook.snapshots.filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"{runbook.name} already has a snapshot named {name}."]})
    steps = process_snapshot(runbook.steps.all(), project.space)
    if not steps:
        raise ValidationError({"runbook_id": [f"{runbook.name} has no steps yet: add one first."]})
    snapshot = RunbookSnapshot.objects.create(
        runbook=runbook,
        name=name,
        notes=notes or "",
        process_snapshot=steps,
        variables_snapshot=variables_snapshot(project),
    )
    if publish:
        Runbook.objects.filter(pk=runbook.pk).update(published_snapshot=snapshot)
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=snapshot,
        space=project.space,
        message=f"Snapshot {name} of the runbook {runbook.name} of {project.name} was taken"
        + (" and published" if publish else ""),
    )
    return snapshot
