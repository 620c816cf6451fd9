"""The write path for environments, projects, process steps, variables and the Features setting.
Pages, the API and the admin call these; each validates, saves and records an audit event."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from deployments.models import DeploymentTarget, Environment, Package, Project, Runbook, ServerConfiguration, Step, Variable
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


def _validate_step(project: Project, runbook: Runbook | None, values: dict, exclude_pk: int | None) -> dict:
    errors: dict[str, list[str]] = {}
    name = (values.get("name") or "").strip()
    siblings = Step.objects.filter(project=project, runbook=runbook).exclude(pk=exclude_pk)
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
def save_step(*, actor: User, project: Project, step: Step | None = None, runbook: Runbook | None = None, **values) -> Step:
    """A step of the project's deployment process, or of one of its runbooks."""
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    runbook = step.runbook if step else runbook
    values = _validate_step(project, runbook, values, step.pk if step else None)
    created = step is None
    step = step or Step(project=project, runbook=runbook, sort_order=project.steps.filter(runbook=runbook).count())
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


@transaction.atomic
def create_runbook(*, actor: User, project: Project, name: str, description: str = "") -> Runbook:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    name = _unique_name(project.runbooks.all(), name, "runbook")
    runbook = Runbook.objects.create(project=project, name=name, description=description)
    record_event(actor=actor, category=Event.Category.CREATED, document=runbook, message=f"Runbook {name} of {project.name} was created")
    return runbook


@transaction.atomic
def create_deployment_target(*, actor: User, space: Space, name: str, kind: str, roles: list[str], environments,
                             uri: str = "", thumbprint: str = "") -> DeploymentTarget:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    name = _unique_name(DeploymentTarget.objects.filter(space=space), name, "deployment target")
    environments = list(environments)
    errors = {}
    if kind not in DeploymentTarget.Kind.values:
        errors["kind"] = [f"Choose one of {', '.join(DeploymentTarget.Kind.labels)}."]
    if not roles:
        errors["roles"] = ["Give the target at least one role: steps find targets by role."]
    if not environments or any(e.space_id != space.pk for e in environments):
        errors["environments"] = ["Choose at least one environment of this space."]
    if kind != DeploymentTarget.Kind.CLOUD_REGION and not uri:
        errors["uri"] = ["A tentacle target needs its URI."]
    if errors:
        raise ValidationError(errors)
    target = DeploymentTarget.objects.create(space=space, name=name, kind=kind, roles=roles, uri=uri, thumbprint=thumbprint.upper())
    target.environments.set(environments)
    record_event(actor=actor, category=Event.Category.CREATED, document=target)
    return target


def store_package(*, actor: User, space: Space, package_id: str, version: str, upload) -> Package:
    """The built-in feed: a zip or tar.gz, kept under var/packages by its SHA-256."""
    import hashlib
    import tarfile
    import zipfile
    from pathlib import Path

    from django.conf import settings

    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=space)
    package_id, version = (package_id or "").strip(), (version or "").strip()
    errors = {}
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", package_id):
        errors["package_id"] = ["Letters, digits, dots, dashes and underscores, starting with a letter or digit."]
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}", version):
        errors["version"] = ["A version such as 1.0.0."]
    name = getattr(upload, "name", "") or ""
    if not name.endswith((".zip", ".tar.gz", ".tgz")):
        errors["file"] = ["Upload a .zip or .tar.gz file."]
    if errors:
        raise ValidationError(errors)
    folder = Path(settings.VAR_DIR) / "packages"
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    partial = folder / f".upload-{hashlib.sha256(name.encode()).hexdigest()[:8]}-{id(upload)}"
    with open(partial, "wb") as out:
        for chunk in upload.chunks():
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    valid = zipfile.is_zipfile(partial) if name.endswith(".zip") else tarfile.is_tarfile(partial)
    if not valid:
        partial.unlink()
        raise ValidationError({"file": [f"{name} is not a valid {'zip' if name.endswith('.zip') else 'tar.gz'} archive."]})
    sha = digest.hexdigest()
    with transaction.atomic():
        if Package.objects.filter(space=space, package_id=package_id, version=version).exists():
            partial.unlink()
            raise ValidationError({"version": [f"The feed already has {package_id} {version}."]})
        partial.replace(folder / sha)
        package = Package.objects.create(space=space, package_id=package_id, version=version, file_name=name[:200], sha256=sha, size=size)
        record_event(actor=actor, category=Event.Category.CREATED, document=package, message=f"Package {package_id} {version} was pushed")
    return package


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

