"""The write path for what deployments are made of: environments, deployment targets, projects, the
steps of a deployment process or runbook, variables, runbooks, the built-in feed's packages, and the
Features setting. Pages, the API and the admin call these. Each validates (a ValidationError names the
field), saves in one transaction and records an audit event; secrets appear in events only redacted."""

from __future__ import annotations

import hashlib
import re
import tarfile
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, QuerySet
from django.utils.text import slugify

from deployments.models import (
    DeploymentTarget, Environment, Package, Project, Release, Runbook, ServerConfiguration, Step, Variable,
)
from infrastructure.models import WorkerPool
from infrastructure.services import validation
from portal.encryption import encrypt
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import differences, record_event, snapshot
from servertasks.models import ServerTask

ENVIRONMENT_FIELDS = ["name", "description", "sort_order"]
TARGET_FIELDS = ["name", "kind", "uri", "thumbprint", "roles", "environments", "is_disabled"]
PROJECT_FIELDS = ["name", "slug", "description", "project_group", "lifecycle", "is_disabled"]
STEP_FIELDS = ["name", "action_type", "location", "worker_pool", "worker_pool_variable", "target_roles", "syntax",
               "script_body", "script_parameters", "packages", "start_with_previous", "condition", "condition_variable",
               "max_parallelism", "instructions", "is_disabled"]
VARIABLE_FIELDS = ["name", "type", "value", "worker_pool", "environments"]
RUNBOOK_FIELDS = ["name", "description"]
STEP_FIELDS += ["responsible_teams", "script_source", "script_file_name"]  # interruptions and ScriptSource=Package

_ROLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_VARIABLE_NAME_RE = re.compile(r"[^#{}\s][^#{}]{0,199}")
_PACKAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}")


def _name(queryset: QuerySet, name: str, what: str, *, exclude_pk: int | None = None, max_length: int = 200) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [f"Give the {what} a name."]})
    if len(name) > max_length:
        raise ValidationError({"name": [f"A {what} name has at most {max_length} characters."]})
    if queryset.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ValidationError({"name": [f"There is already a {what} named {name}."]})
    return name


def _saved(actor: User, document, before: dict, fields: list[str], secret_fields: frozenset[str] = frozenset(), **event) -> None:
    """Record Created (no `before`) or Modified with what changed; nothing when nothing did."""
    changes = differences(before, snapshot(document, fields, secret_fields))
    if changes or not before:
        record_event(actor=actor, category=Event.Category.MODIFIED if before else Event.Category.CREATED,
                     document=document, changes=changes, **event)


def _reorder(queryset: QuerySet, ordered_ids: list[int], what: str) -> list:
    rows = {row.pk: row for row in queryset.select_for_update()}
    if sorted(ordered_ids) != sorted(rows):
        raise ValidationError({"order": [f"Give every {what} exactly once."]})
    for position, pk in enumerate(ordered_ids):
        queryset.model.objects.filter(pk=pk).update(sort_order=position)
    return [rows[pk] for pk in ordered_ids]


def moved(ordered_ids: list[int], pk: int, direction: str) -> list[int]:
    """`ordered_ids` with `pk` one place up or down (unchanged at either end): for up/down buttons."""
    ids = list(ordered_ids)
    i = ids.index(pk)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ids):
        ids[i], ids[j] = ids[j], ids[i]
    return ids


# Environments ---------------------------------------------------------------------------------------

@transaction.atomic
def create_environment(*, actor: User, space: Space, name: str, description: str = "") -> Environment:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    name = _name(Environment.objects.filter(space=space), name, "environment")
    order = (Environment.objects.filter(space=space).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    environment = Environment.objects.create(space=space, name=name, description=description, sort_order=order)
    _saved(actor, environment, {}, ENVIRONMENT_FIELDS)
    return environment


@transaction.atomic
def update_environment(*, actor: User, environment: Environment, name: str, description: str = "",
                       sort_order: int | None = None) -> Environment:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=environment.space)
    environment = Environment.objects.select_for_update().get(pk=environment.pk)
    before = snapshot(environment, ENVIRONMENT_FIELDS)
    environment.name = _name(Environment.objects.filter(space=environment.space_id), name, "environment", exclude_pk=environment.pk)
    environment.description = description
    if sort_order is not None:
        environment.sort_order = sort_order
    environment.save()
    _saved(actor, environment, before, ENVIRONMENT_FIELDS)
    return environment


@transaction.atomic
def reorder_environments(*, actor: User, space: Space, ordered_ids: list[int]) -> None:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    ordered = _reorder(Environment.objects.filter(space=space), ordered_ids, "environment of the space")
    record_event(actor=actor, category=Event.Category.MODIFIED, document_type="Environment", space=space,
                 message="Environments reordered: " + ", ".join(e.name for e in ordered))


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
    users += [f"the variable {v.name} of {v.project.name} (scoped to it)" for v in environment.variables.select_related("project")[:20]]
    users += [f"the deployment target {t.name} (its only environment)" for t in environment.deployment_targets.all()
              if t.environments.count() == 1]
    if users:
        raise ValidationError(f"{environment.name} is in use and cannot be deleted. It is used by: " + "; ".join(users) + ".")
    record_event(actor=actor, category=Event.Category.DELETED, document=environment)
    environment.delete()


# Deployment targets ---------------------------------------------------------------------------------

def _target_values(space: Space, target: DeploymentTarget | None, name: str, kind: str, roles: list[str], environments,
                   uri: str, thumbprint: str) -> dict:
    errors: dict[str, list[str]] = {}
    try:
        name = _name(DeploymentTarget.objects.filter(space=space), name, "deployment target", exclude_pk=target.pk if target else None)
    except ValidationError as error:
        errors.update(error.message_dict)
    roles = [r.strip() for r in roles if r and r.strip()]
    environments = list(environments)
    if kind not in DeploymentTarget.Kind.values:
        errors["kind"] = [f"Choose one of {', '.join(DeploymentTarget.Kind.labels)}."]
    if not roles:
        errors["roles"] = ["Give the target at least one role: steps find targets by role."]
    elif bad := [r for r in roles if not _ROLE_RE.fullmatch(r)]:
        errors["roles"] = [f"A role is letters, digits, dots, dashes or underscores: {', '.join(bad)}."]
    if not environments:
        errors["environments"] = ["Choose at least one environment."]
    elif any(e.space_id != space.pk for e in environments):
        errors["environments"] = [f"Choose environments of {space.name}."]
    uri, thumbprint = (uri or "").strip(), validation.normalise_thumbprint(thumbprint)
    if kind == DeploymentTarget.Kind.CLOUD_REGION:
        uri, thumbprint = "", ""
    elif kind in DeploymentTarget.Kind.values:
        check = validation.listening_uri_error if kind == DeploymentTarget.Kind.LISTENING else validation.polling_uri_error
        if error := check(uri):
            errors["uri"] = [error]
        if error := validation.thumbprint_error(thumbprint):
            errors["thumbprint"] = [error]
    if errors:
        raise ValidationError(errors)
    return {"name": name, "kind": kind, "roles": list(dict.fromkeys(roles)), "environments": environments, "uri": uri,
            "thumbprint": thumbprint}


@transaction.atomic
def create_deployment_target(*, actor: User, space: Space, name: str, kind: str, roles: list[str], environments,
                             uri: str = "", thumbprint: str = "", is_disabled: bool = False) -> DeploymentTarget:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    values = _target_values(space, None, name, kind, roles, environments, uri, thumbprint)
    environments = values.pop("environments")
    target = DeploymentTarget.objects.create(space=space, is_disabled=is_disabled, **values)
    target.environments.set(environments)
    _saved(actor, target, {}, TARGET_FIELDS)
    return target


@transaction.atomic
def update_deployment_target(*, actor: User, target: DeploymentTarget, name: str, kind: str, roles: list[str], environments,
                             uri: str = "", thumbprint: str = "", is_disabled: bool = False) -> DeploymentTarget:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=target.space)
    target = DeploymentTarget.objects.select_for_update().get(pk=target.pk)
    before = snapshot(target, TARGET_FIELDS)
    values = _target_values(target.space, target, name, kind, roles, environments, uri, thumbprint)
    environments = values.pop("environments")
    for field, value in values.items():
        setattr(target, field, value)
    target.is_disabled = is_disabled
    target.save()
    target.environments.set(environments)
    _saved(actor, target, before, TARGET_FIELDS)
    return target


@transaction.atomic
def delete_deployment_target(*, actor: User, target: DeploymentTarget) -> None:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=target.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=target)
    target.delete()


# Projects -------------------------------------------------------------------------------------------

def _slug(space: Space, name: str, exclude_pk: int | None = None) -> str:
    base = slugify(name)[:180] or "project"
    taken = set(Project.objects.filter(space=space, slug__startswith=base).exclude(pk=exclude_pk).values_list("slug", flat=True))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _project_links(space: Space, project_group, lifecycle) -> None:
    errors = {}
    if project_group is not None and project_group.space_id != space.pk:
        errors["project_group"] = [f"{project_group.name} is not a project group of {space.name}."]
    if lifecycle is not None and lifecycle.space_id != space.pk:
        errors["lifecycle"] = [f"{lifecycle.name} is not a lifecycle of {space.name}."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def create_project(*, actor: User, space: Space, name: str, description: str = "", project_group=None, lifecycle=None) -> Project:
    """In the Default Project Group with the Default Lifecycle unless told otherwise; with its Default channel."""
    from deployments.services import lifecycles

    require_permission(actor, Permission.PROJECT_EDIT, space=space)
    name = _name(Project.objects.filter(space=space), name, "project")
    _project_links(space, project_group, lifecycle)
    try:
        project = Project.objects.create(space=space, name=name, slug=_slug(space, name), description=description,
                                         project_group=project_group or lifecycles.default_project_group(space),
                                         lifecycle=lifecycle or lifecycles.default_lifecycle(space))
    except IntegrityError:
        raise ValidationError({"name": [f"There is already a project named {name}."]}) from None
    lifecycles.default_channel(project)
    _saved(actor, project, {}, PROJECT_FIELDS)
    return project


@transaction.atomic
def update_project(*, actor: User, project: Project, name: str, description: str = "", project_group=None, lifecycle=None,
                   slug: str | None = None, is_disabled: bool | None = None) -> Project:
    """`project_group`, `lifecycle`, `slug` and `is_disabled` None keep what the project has."""
    require_permission(actor, Permission.PROJECT_EDIT, space=project.space)
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = snapshot(project, PROJECT_FIELDS)
    name = _name(Project.objects.filter(space=project.space_id), name, "project", exclude_pk=project.pk)
    _project_links(project.space, project_group, lifecycle)
    if name != project.name:
        project.name, project.slug = name, _slug(project.space, name, exclude_pk=project.pk)
    if slug is not None and slug != project.slug:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,199}", slug):
            raise ValidationError({"slug": ["A slug is lower-case letters, digits and dashes."]})
        if Project.objects.filter(space=project.space_id, slug=slug).exclude(pk=project.pk).exists():
            raise ValidationError({"slug": [f"Another project has the slug {slug}."]})
        project.slug = slug
    project.project_group = project_group or project.project_group
    project.lifecycle = lifecycle or project.lifecycle
    if is_disabled is not None:
        project.is_disabled = is_disabled
    project.description = description
    project.save()
    _saved(actor, project, before, PROJECT_FIELDS)
    return project


@transaction.atomic
def delete_project(*, actor: User, project: Project) -> None:
    """Refused once it has been deployed: deployments are history, and history is not deleted by accident."""
    require_permission(actor, Permission.PROJECT_EDIT, space=project.space)
    deployed = Release.objects.filter(project=project, deployments__isnull=False).distinct().count()
    if deployed:
        raise ValidationError(f"{project.name} has deployed releases ({deployed}) and cannot be deleted.")
    record_event(actor=actor, category=Event.Category.DELETED, document=project, space=project.space)
    project.delete()


# Steps ----------------------------------------------------------------------------------------------

def _package_errors(space: Space, packages) -> list[str]:
    if not isinstance(packages, list) or any(not isinstance(p, dict) or not p.get("PackageId") for p in packages):
        return ["Reference packages as a list of {PackageId, Version}."]
    errors = []
    for reference in packages:
        found = Package.objects.filter(space=space, package_id=reference["PackageId"])
        if reference.get("Version"):
            found = found.filter(version=reference["Version"])
        if not found.exists():
            wanted = reference["PackageId"] + (f" {reference['Version']}" if reference.get("Version") else "")
            errors.append(f"The built-in feed has no package {wanted}.")
    return errors


def _step_values(project: Project, runbook: Runbook | None, values: dict, exclude_pk: int | None) -> dict:
    """Every rule a step must follow; returns the values to store (a server step's pool fields are empty)."""
    unknown = set(values) - set(STEP_FIELDS)
    if unknown:
        raise ValueError(f"unknown step fields: {sorted(unknown)}")
    v = {"action_type": Step.ActionType.SCRIPT, "location": Step.Location.WORKER, "worker_pool": None, "worker_pool_variable": "",
         "target_roles": [], "syntax": Step.Syntax.BASH, "script_body": "", "script_parameters": "", "packages": [],
         "start_with_previous": False, "condition": Step.Condition.SUCCESS, "condition_variable": "", "max_parallelism": 10,
         "instructions": "", "is_disabled": False, "responsible_teams": [], "script_source": "Inline", "script_file_name": "",
         **values}
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    _script_source_and_teams(project, v, fail)

    v["name"] = (v.get("name") or "").strip()
    if not v["name"]:
        fail("name", "Give the step a name.")
    elif len(v["name"]) > 200:
        fail("name", "A step name has at most 200 characters.")
    elif Step.objects.filter(project=project, runbook=runbook, name__iexact=v["name"]).exclude(pk=exclude_pk).exists():
        fail("name", f"The process already has a step named {v['name']}.")
    for field, choices in (("action_type", Step.ActionType), ("location", Step.Location), ("syntax", Step.Syntax),
                           ("condition", Step.Condition)):
        if v[field] not in choices.values:
            fail(field, f"Choose one of {', '.join(choices.labels)}.")
    pool, variable = v["worker_pool"], (v["worker_pool_variable"] or "").strip()
    v["worker_pool_variable"] = variable
    v["target_roles"] = [r.strip() for r in v["target_roles"] or [] if r and r.strip()]
    if v["action_type"] == Step.ActionType.MANUAL:
        v.update(location=Step.Location.SERVER, worker_pool=None, worker_pool_variable="", target_roles=[], script_body="",
                 script_parameters="", packages=[])
        if not (v["instructions"] or "").strip():
            fail("instructions", "Tell the reviewer what to check before they proceed.")
    elif v["action_type"] == Step.ActionType.SCRIPT:
        if v["location"] == Step.Location.SERVER:
            if pool is not None or variable:
                fail("worker_pool", "A step that runs on the server takes no pool: it uses the default worker pool.")
        elif v["location"] in (Step.Location.WORKER, Step.Location.ON_BEHALF):
            if pool is None and not variable:
                fail("worker_pool", "Choose a worker pool, or name the Worker Pool variable that chooses one.")
            elif pool is not None and variable:
                fail("worker_pool_variable", "Choose the pool directly or via a variable, not both.")
            if pool is not None and pool.space_id != project.space_id:
                fail("worker_pool", f"{pool.name} is not a worker pool of {project.space.name}.")
            if variable and not project.variables.filter(name=variable, type=Variable.Type.WORKER_POOL).exists():
                fail("worker_pool_variable", f"{project.name} has no Worker Pool variable named {variable}: add it on the "
                                             "Variables page first.")
        if v["location"] == Step.Location.ON_BEHALF:
            if not v["target_roles"]:
                fail("target_roles", "Name at least one target role.")
            elif bad := [r for r in v["target_roles"] if not _ROLE_RE.fullmatch(r)]:
                fail("target_roles", f"A role is letters, digits, dots, dashes or underscores: {', '.join(bad)}.")
        else:
            v["target_roles"] = []
        if not (v["script_body"] or "").strip() and v["script_source"] == "Inline":
            fail("script_body", "Write the script this step runs.")
        for message in _package_errors(project.space, v["packages"]):
            fail("packages", message)
    if isinstance(v["max_parallelism"], bool) or not isinstance(v["max_parallelism"], int) or v["max_parallelism"] < 1:
        fail("max_parallelism", "At least 1.")
    if v["condition"] == Step.Condition.VARIABLE:
        if not (v["condition_variable"] or "").strip():
            fail("condition_variable", "Give the variable expression, e.g. #{RunThisStep}.")
    else:
        v["condition_variable"] = ""
    if errors:
        raise ValidationError(errors)
    if v["location"] == Step.Location.SERVER:
        v["worker_pool"], v["worker_pool_variable"] = None, ""
    return v


def bump_process_version(project: Project, runbook: Runbook | None) -> None:
    """Every change to a process raises its Version: the API's optimistic concurrency compares it."""
    if runbook is not None:
        Runbook.objects.filter(pk=runbook.pk).update(process_version=F("process_version") + 1)
    else:
        Project.objects.filter(pk=project.pk).update(process_version=F("process_version") + 1)
def _script_source_and_teams(project: Project, v: dict, fail) -> None:
    """ScriptSource=Package names a file of the first package; responsible teams are teams of this space."""
    from django.db.models import Q

    from portal.models import Team

    if v["script_source"] not in ("Inline", "Package"):
        fail("script_source", "Choose Inline or Package.")
    v["script_file_name"] = (v["script_file_name"] or "").strip().replace("\\", "/")
    if v["script_source"] == "Package" and v["action_type"] == Step.ActionType.SCRIPT:
        if not v["packages"]:
            fail("packages", "A script from a package needs a referenced package.")
        if not v["script_file_name"] or ".." in v["script_file_name"].split("/") or v["script_file_name"].startswith("/"):
            fail("script_file_name", "Give the script's path inside the package, e.g. scripts/deploy.sh.")
    else:
        v["script_source"], v["script_file_name"] = "Inline", ""
    teams = [str(t) for t in v["responsible_teams"] or []]
    known = {t.octopus_id for t in Team.objects.filter(Q(space=project.space) | Q(space__isnull=True))}
    if unknown := [t for t in teams if t not in known]:
        fail("responsible_teams", f"No such team in {project.space.name}: {', '.join(unknown)}.")
    v["responsible_teams"] = teams if v["action_type"] == Step.ActionType.MANUAL else []


def _step_where(step: Step) -> str:
    return f"the runbook {step.runbook.name} of {step.project.name}" if step.runbook_id else f"the deployment process of {step.project.name}"


@transaction.atomic
def save_step(*, actor: User, project: Project, step: Step | None = None, runbook: Runbook | None = None, **values) -> Step:
    """Add a step (step None) to the project's deployment process, or to `runbook`'s; or change `step`."""
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    if runbook is not None and runbook.project_id != project.pk:
        raise ValidationError(f"{runbook.name} is not a runbook of {project.name}.")
    if step is not None:
        step = Step.objects.select_for_update().get(pk=step.pk, project=project)
        runbook = step.runbook
    values = _step_values(project, runbook, values, step.pk if step else None)
    before = snapshot(step, STEP_FIELDS) if step else {}
    if step is None:
        order = (Step.objects.filter(project=project, runbook=runbook).aggregate(m=Max("sort_order"))["m"] or 0) + 1
        step = Step(project=project, runbook=runbook, sort_order=order)
    for field in STEP_FIELDS:
        setattr(step, field, values[field])
    step.save()
    bump_process_version(project, runbook)
    _saved(actor, step, before, STEP_FIELDS, space=project.space,
           message=f"Step {step.name} of {_step_where(step)} was {'changed' if before else 'added'}")
    return step


@transaction.atomic
def reorder_steps(*, actor: User, project: Project, runbook: Runbook | None = None, ordered_ids: list[int]) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    ordered = _reorder(Step.objects.filter(project=project, runbook=runbook), ordered_ids, "step of the process")
    bump_process_version(project, runbook)
    where = f"the runbook {runbook.name} of {project.name}" if runbook else f"the deployment process of {project.name}"
    record_event(actor=actor, category=Event.Category.MODIFIED, document_type="DeploymentProcess", space=project.space,
                 message=f"Steps of {where} reordered: " + ", ".join(s.name for s in ordered))


@transaction.atomic
def delete_step(*, actor: User, step: Step) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=step.project.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=step, space=step.project.space,
                 message=f"Step {step.name} of {_step_where(step)} was deleted")
    step.delete()
    bump_process_version(step.project, step.runbook)


# Variables ------------------------------------------------------------------------------------------

@transaction.atomic
def save_variable(*, actor: User, project: Project, name: str, type: str, value: str = "", worker_pool: WorkerPool | None = None,
                  environments=(), variable: Variable | None = None) -> Variable:
    """Add (variable None) or change a project variable. A Sensitive value is encrypted and never shown again;
    when changing a Sensitive variable, a blank value keeps the stored one."""
    require_permission(actor, Permission.VARIABLE_EDIT, space=project.space)
    if variable is not None:
        variable = Variable.objects.select_for_update().get(pk=variable.pk, project=project)
    name, environments, errors = (name or "").strip(), list(environments), {}
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
        for other in project.variables.filter(name__iexact=name).exclude(pk=variable.pk if variable else None).prefetch_related("environments"):
            if sorted(e.pk for e in other.environments.all()) == scope:
                errors["name"] = [f"{project.name} already has a variable {other.name} with this scope: scope it differently, or edit that one."]
    if errors:
        raise ValidationError(errors)

    was_sensitive = variable is not None and variable.is_sensitive
    before = snapshot(variable, VARIABLE_FIELDS, frozenset({"value"}) if was_sensitive else frozenset()) if variable else {}
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
    _saved(actor, variable, before, VARIABLE_FIELDS, secret, space=project.space,
           message=f"Variable {name} of {project.name} was {'changed' if before else 'added'}")
    return variable


@transaction.atomic
def delete_variable(*, actor: User, variable: Variable) -> None:
    require_permission(actor, Permission.VARIABLE_EDIT, space=variable.project.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=variable, space=variable.project.space,
                 message=f"Variable {variable.name} of {variable.project.name} was deleted")
    variable.delete()
    Project.objects.filter(pk=variable.project_id).update(variable_set_version=F("variable_set_version") + 1)


# Runbooks -------------------------------------------------------------------------------------------

@transaction.atomic
def create_runbook(*, actor: User, project: Project, name: str, description: str = "") -> Runbook:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    name = _name(project.runbooks.all(), name, "runbook")
    runbook = Runbook.objects.create(project=project, name=name, description=description)
    _saved(actor, runbook, {}, RUNBOOK_FIELDS, space=project.space, message=f"Runbook {name} of {project.name} was created")
    return runbook


@transaction.atomic
def update_runbook(*, actor: User, runbook: Runbook, name: str, description: str = "") -> Runbook:
    require_permission(actor, Permission.PROCESS_EDIT, space=runbook.project.space)
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    before = snapshot(runbook, RUNBOOK_FIELDS)
    runbook.name = _name(runbook.project.runbooks.all(), name, "runbook", exclude_pk=runbook.pk)
    runbook.description = description
    runbook.save()
    _saved(actor, runbook, before, RUNBOOK_FIELDS, space=runbook.project.space)
    return runbook


@transaction.atomic
def delete_runbook(*, actor: User, runbook: Runbook) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=runbook.project.space)
    running = runbook.runs.exclude(task__state__in=ServerTask.FINAL_STATES).count()
    if running:
        raise ValidationError(f"{runbook.name} is running ({running}); wait for its runs to finish or cancel them first.")
    record_event(actor=actor, category=Event.Category.DELETED, document=runbook, space=runbook.project.space,
                 message=f"Runbook {runbook.name} of {runbook.project.name} was deleted")
    runbook.delete()


# The built-in feed ----------------------------------------------------------------------------------

def packages_folder() -> Path:
    return Path(settings.VAR_DIR) / "packages"


def _archive_error(path: Path, file_name: str) -> str | None:
    """None if the file really is the archive its name says; zip CRCs and every tar member are read."""
    try:
        if file_name.endswith(".zip"):
            if not zipfile.is_zipfile(path):
                return f"{file_name} is not a valid zip archive."
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    return f"{file_name} is a damaged zip archive."
        else:
            with open(path, "rb") as f:
                if f.read(2) != b"\x1f\x8b":
                    return f"{file_name} is not a valid tar.gz archive (it is not gzip-compressed)."
            with tarfile.open(path, "r:gz") as archive:
                archive.getmembers()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError):
        return f"{file_name} is not a valid {'zip' if file_name.endswith('.zip') else 'tar.gz'} archive."
    return None


def store_package(*, actor: User, space: Space, package_id: str, version: str, upload) -> Package:
    """Push a .zip or .tar.gz to the built-in feed: checked, hashed, and kept under VAR_DIR/packages/<sha256>."""
    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=space)
    package_id, version, file_name = (package_id or "").strip(), (version or "").strip(), (getattr(upload, "name", "") or "")
    errors = {}
    if not _PACKAGE_ID_RE.fullmatch(package_id):
        errors["package_id"] = ["Letters, digits, dots, dashes and underscores, starting with a letter or digit."]
    if not version:
        errors["version"] = ["Give the package a version, such as 1.0.0."]
    elif not _VERSION_RE.fullmatch(version):
        errors["version"] = ["A version is letters, digits, dots, pluses, dashes and underscores, such as 1.0.0."]
    if not file_name.lower().endswith((".zip", ".tar.gz", ".tgz")):
        errors["file"] = ["Upload a .zip or .tar.gz file."]
    elif Package.objects.filter(space=space, package_id=package_id, version=version).exists():
        errors["version"] = [f"The feed already has {package_id} {version}."]
    if errors:
        raise ValidationError(errors)
    folder = packages_folder()
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".upload-{uuid.uuid4().hex}"
    try:
        digest, size = hashlib.sha256(), 0
        with open(partial, "wb") as out:
            for chunk in upload.chunks():
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if error := _archive_error(partial, file_name.lower()):
            raise ValidationError({"file": [error]})
        sha256 = digest.hexdigest()
        with transaction.atomic():
            try:
                package = Package.objects.create(space=space, package_id=package_id, version=version, file_name=file_name[-200:],
                                                 sha256=sha256, size=size)
            except IntegrityError:
                raise ValidationError({"version": [f"The feed already has {package_id} {version}."]}) from None
            partial.replace(folder / sha256)  # same content, same name: a re-push of identical bytes is harmless
            record_event(actor=actor, category=Event.Category.CREATED, document=package, space=space,
                         message=f"Package {package_id} {version} was pushed to the built-in feed",
                         changes={"sha256": [None, sha256], "size": [None, size]})
        return package
    finally:
        partial.unlink(missing_ok=True)


@transaction.atomic
def delete_package(*, actor: User, package: Package) -> None:
    """Refused while a step pins this version, or references the id and this is its only version."""
    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=package.space)
    only_version = not Package.objects.filter(space=package.space, package_id=package.package_id).exclude(pk=package.pk).exists()
    users = []
    for step in Step.objects.filter(project__space=package.space).select_related("project", "runbook"):
        for reference in step.packages or []:
            if reference.get("PackageId") == package.package_id and (reference.get("Version") == package.version
                                                                     or (not reference.get("Version") and only_version)):
                users.append(f"step {step.name} of {_step_where(step)}")
    if users:
        raise ValidationError(f"{package} is referenced by: " + "; ".join(users) + ".")
    record_event(actor=actor, category=Event.Category.DELETED, document=package, space=package.space)
    package.delete()
    if not Package.objects.filter(sha256=package.sha256).exists():
        (packages_folder() / package.sha256).unlink(missing_ok=True)


# Configuration ➜ Features ---------------------------------------------------------------------------

@transaction.atomic
def set_builtin_worker_enabled(*, actor: User, enabled: bool) -> ServerConfiguration:
    require_permission(actor, Permission.CONFIGURE_SERVER)
    configuration = ServerConfiguration.objects.select_for_update().get(pk=ServerConfiguration.current().pk)
    if configuration.is_builtin_worker_enabled != enabled:
        configuration.is_builtin_worker_enabled = enabled
        configuration.save()
        record_event(actor=actor, category=Event.Category.MODIFIED, document_type="ServerConfiguration", document_name="Features",
                     message=f"The built-in worker was {'enabled' if enabled else 'disabled'}",
                     changes={"is_builtin_worker_enabled": [not enabled, enabled]})
    return configuration


# What refers to a worker pool (infrastructure.services.pools.pool_referrer_finders) ----------------

def steps_using_pool(pool: WorkerPool) -> list[str]:
    return [f"step {step.name} of {_step_where(step)}"
            for step in Step.objects.filter(worker_pool=pool).select_related("project", "runbook").order_by("project__name", "id")]


def variables_using_pool(pool: WorkerPool) -> list[str]:
    return [f"the Worker Pool variable {v.name} of {v.project.name}"
            for v in Variable.objects.filter(worker_pool=pool).select_related("project").order_by("project__name", "name")]


def releases_using_pool(pool: WorkerPool) -> list[str]:
    """Releases whose snapshot names the pool (a step's pool or a Worker Pool variable's value) and that have not yet
    been deployed successfully to every environment of the space: they may still be deployed, and would then fail."""
    environments = dict(Environment.objects.filter(space=pool.space_id).values_list("pk", "name"))
    found = []
    releases = Release.objects.filter(project__space=pool.space_id).select_related("project").order_by("project__name", "-created")
    for release in releases.iterator():
        uses = any(step.get("WorkerPoolId") == pool.pk for step in release.process_snapshot or []) or any(
            variable.get("WorkerPoolId") == pool.octopus_id for variable in release.variables_snapshot or [])
        if not uses:
            continue
        deployed = set(release.deployments.filter(task__state=ServerTask.State.SUCCESS).values_list("environment_id", flat=True))
        missing = [environments[pk] for pk in environments if pk not in deployed]
        if missing or not environments:
            found.append(f"release {release.version} of {release.project.name} (not yet deployed to "
                         f"{', '.join(missing) if missing else 'any environment'})")
    return found


POOL_REFERRER_FINDERS = (steps_using_pool, variables_using_pool, releases_using_pool)
