"""The write path for environments, projects, process steps, variables and the Features setting.
Pages, the API and the admin call these; each validates, saves and records an audit event."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from deployments.models import Environment, Project, ServerConfiguration, Step, Variable
from infrastructure.models import WorkerPool
from portal.encryption import encrypt
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event

STEP_FIELDS = ["name", "action_type", "location", "worker_pool", "worker_pool_variable", "target_roles", "syntax",
               "script_body", "script_parameters", "start_with_previous", "condition", "condition_variable",
               "max_parallelism", "instructions", "is_disabled"]


def _unique_name(queryset, name: str, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [f"Give the {what} a name."]})
    if queryset.filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"There is already a {what} named {name}."]})
    return name


@transaction.atomic
def create_environment(*, actor: User, space: Space, name: str, description: str = "") -> Environment:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    name = _unique_name(Environment.objects.filter(space=space), name, "environment")
    order = Environment.objects.filter(space=space).count()
    environment = Environment.objects.create(space=space, name=name, description=description, sort_order=order)
    record_event(actor=actor, category=Event.Category.CREATED, document=environment)
    return environment


@transaction.atomic
def create_project(*, actor: User, space: Space, name: str, description: str = "") -> Project:
    require_permission(actor, Permission.PROJECT_EDIT, space=space)
    name = _unique_name(Project.objects.filter(space=space), name, "project")
    slug = slugify(name)[:190] or "project"
    if Project.objects.filter(space=space, slug=slug).exists():
        slug = f"{slug}-{Project.objects.filter(space=space).count() + 1}"
    project = Project.objects.create(space=space, name=name, slug=slug, description=description)
    record_event(actor=actor, category=Event.Category.CREATED, document=project)
    return project


def _validate_step(project: Project, values: dict, exclude_pk: int | None) -> dict:
    errors: dict[str, list[str]] = {}
    name = (values.get("name") or "").strip()
    siblings = Step.objects.filter(project=project, runbook__isnull=True).exclude(pk=exclude_pk)
    if not name:
        errors["name"] = ["Give the step a name."]
    elif siblings.filter(name__iexact=name).exists():
        errors["name"] = [f"The process already has a step named {name}."]
    pool, variable = values.get("worker_pool"), (values.get("worker_pool_variable") or "").strip()
    if values["action_type"] == Step.ActionType.SCRIPT:
        if values["location"] == Step.Location.SERVER:
            pool, variable = None, ""
        elif not pool and not variable:
            errors["worker_pool"] = ["Choose a worker pool, or name the Worker Pool variable that chooses one."]
        elif pool and variable:
            errors["worker_pool_variable"] = ["Choose the pool directly or via a variable, not both."]
        if pool is not None and pool.space_id != project.space_id:
            errors["worker_pool"] = ["That pool is not in this project's space."]
        if values["location"] == Step.Location.ON_BEHALF and not values.get("target_roles"):
            errors["target_roles"] = ["Name at least one target role."]
        if not (values.get("script_body") or "").strip():
            errors["script_body"] = ["Write the script this step runs."]
    if int(values.get("max_parallelism") or 0) < 1:
        errors["max_parallelism"] = ["At least 1."]
    if values.get("condition") == Step.Condition.VARIABLE and not (values.get("condition_variable") or "").strip():
        errors["condition_variable"] = ["Give the variable expression, e.g. #{RunThisStep}."]
    if errors:
        raise ValidationError(errors)
    return {**values, "name": name, "worker_pool": pool, "worker_pool_variable": variable}


@transaction.atomic
def save_step(*, actor: User, project: Project, step: Step | None = None, **values) -> Step:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    values = _validate_step(project, values, step.pk if step else None)
    created = step is None
    step = step or Step(project=project, sort_order=project.steps.filter(runbook__isnull=True).count())
    for field in STEP_FIELDS:
        if field in values:
            setattr(step, field, values[field])
    step.save()
    record_event(actor=actor, category=Event.Category.CREATED if created else Event.Category.MODIFIED, document=step,
                 message=f"Step {step.name} of {project.name} was {'added' if created else 'changed'}")
    return step


@transaction.atomic
def delete_step(*, actor: User, step: Step) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=step.project.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=step, message=f"Step {step.name} of {step.project.name} was deleted")
    step.delete()


@transaction.atomic
def save_variable(*, actor: User, project: Project, name: str, type: str, value: str = "", worker_pool: WorkerPool | None = None,
                  environments=(), variable: Variable | None = None) -> Variable:
    """Sensitive values are encrypted and never shown again; a blank value keeps the old one."""
    require_permission(actor, Permission.VARIABLE_EDIT, space=project.space)
    name = (name or "").strip()
    errors = {}
    if not name:
        errors["name"] = ["Give the variable a name."]
    if type not in Variable.Type.values:
        errors["type"] = [f"Choose one of {', '.join(Variable.Type.labels)}."]
    if type == Variable.Type.WORKER_POOL and (worker_pool is None or worker_pool.space_id != project.space_id):
        errors["worker_pool"] = ["Choose a worker pool of this space."]
    if any(e.space_id != project.space_id for e in environments):
        errors["environments"] = ["Scope to environments of this space."]
    if errors:
        raise ValidationError(errors)
    created = variable is None
    variable = variable or Variable(project=project)
    variable.name, variable.type = name, type
    variable.worker_pool = worker_pool if type == Variable.Type.WORKER_POOL else None
    if type == Variable.Type.SENSITIVE:
        if value or created or not variable.is_sensitive:
            variable.value = encrypt(value)
    else:
        variable.value = value if type == Variable.Type.TEXT else ""
    variable.save()
    variable.environments.set(environments)
    record_event(actor=actor, category=Event.Category.CREATED if created else Event.Category.MODIFIED, document=variable,
                 message=f"Variable {name} of {project.name} was {'added' if created else 'changed'}",
                 changes={"value": ["(sensitive)" if type == Variable.Type.SENSITIVE else None, "(sensitive)"
                                    if type == Variable.Type.SENSITIVE else value]})
    return variable


@transaction.atomic
def delete_variable(*, actor: User, variable: Variable) -> None:
    require_permission(actor, Permission.VARIABLE_EDIT, space=variable.project.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=variable, message=f"Variable {variable.name} was deleted")
    variable.delete()


def set_builtin_worker_enabled(*, actor: User, enabled: bool) -> ServerConfiguration:
    require_permission(actor, Permission.CONFIGURE_SERVER)
    configuration = ServerConfiguration.current()
    if configuration.is_builtin_worker_enabled != enabled:
        configuration.is_builtin_worker_enabled = enabled
        configuration.save()
        record_event(actor=actor, category=Event.Category.MODIFIED, document_type="ServerConfiguration",
                     message=f"The built-in worker was {'enabled' if enabled else 'disabled'}",
                     changes={"is_builtin_worker_enabled": [not enabled, enabled]})
    return configuration


def pool_referrers(pool: WorkerPool) -> list[str]:
    """What refers to a pool: process steps, Worker Pool variables, and releases whose snapshot uses it."""
    found = [f"step {s.name} of {s.project.name}" for s in Step.objects.filter(worker_pool=pool).select_related("project")]
    found += [f"variable {v.name} of {v.project.name}" for v in Variable.objects.filter(worker_pool=pool).select_related("project")]
    from deployments.models import Release

    latest = [project.releases.first() for project in Project.objects.filter(space=pool.space)]
    for release in [r for r in latest if r is not None]:  # a project's latest release may still be deployed
        if any(step["WorkerPoolId"] == pool.pk for step in release.process_snapshot) or any(
                v.get("WorkerPoolId") == pool.octopus_id for v in release.variables_snapshot):
            found.append(f"release {release.version} of {release.project.name}")
    return found

