"""Releases, deployments, runbook runs and Script Console runs: each queues one ServerTask that the
orchestrator runs. A release snapshots the process and variables; a runbook run and an ad-hoc script
carry their snapshot in the task's arguments, so a task always runs what was asked for."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from deployments.models import (
    Channel,
    Deployment,
    Environment,
    Package,
    Project,
    Release,
    Runbook,
    RunbookRun,
    RunbookSnapshot,
    Step,
)
from deployments.services.interruptions import pending_interruption_of, submit_interruption
from deployments.services.lifecycles import default_channel, deploy_automatically, require_promotable
from deployments.services.snapshots import (
    PackageSnapshot,
    StepSnapshot,
    VariableSnapshot,
    build_step_snapshot,
    build_variable_snapshot,
    pool_id,
    pool_pk,
)
from deployments.tasks import run_server_task_task
from infrastructure.models import Worker, WorkerPool
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import may_use, require_permission
from portal.services.audit import record_event
from servertasks.models import ServerTask
from servertasks.services.tasks import queue_server_task

USE_POOL = "use_workerpool"


# Snapshots -------------------------------------------------------------------------------------------


def step_snapshot(step: Step, space: Space, pin_packages: bool = True) -> StepSnapshot:
    return build_step_snapshot(
        step_id=step.octopus_id,
        name=step.name,
        action_type=step.action_type,
        location=step.location,
        worker_pool_pk=step.worker_pool_id,
        worker_pool_variable=step.worker_pool_variable,
        target_roles=step.target_roles or [],
        syntax=step.syntax,
        script_body=step.script_body,
        script_parameters=step.script_parameters,
        packages=[_package_snapshot(space, p, step.name) if pin_packages else dict(p) for p in step.packages or []],
        start_with_previous=step.start_with_previous,
        condition=step.condition,
        condition_variable=step.condition_variable,
        max_parallelism=step.max_parallelism,
        instructions=step.instructions,
        is_disabled=step.is_disabled,
        script_source=step.script_source,
        script_file_name=step.script_file_name,
        responsible_team_ids=step.responsible_teams or [],
    )


def _package_snapshot(space: Space, reference: dict, step_name: str) -> PackageSnapshot:
    """A package reference with its version pinned: a blank version means the newest in the feed now."""
    packages = Package.objects.filter(space=space, package_id=reference.get("PackageId", ""))
    package = packages.filter(version=reference["Version"]).first() if reference.get("Version") else packages.first()
    if package is None:
        wanted = f"{reference.get('PackageId')} {reference.get('Version') or '(latest)'}"
        raise ValidationError(
            {"Packages": [f"Step {step_name!r} references {wanted}, which is not in the built-in feed."]}
        )
    return {
        "PackageId": package.package_id,
        "Version": package.version,
        "Sha256": package.sha256,
        "FileName": package.file_name,
    }


def process_snapshot(steps, space: Space, package_versions: dict[str, str] | None = None) -> list[StepSnapshot]:
    """`package_versions` picks versions by step name or package id ("*": every other reference), as Octopus's
    `Packages: ["StepName:1.0.1"]` and `PackageVersion` do; a reference with no pick keeps its own (blank: latest)."""
    if not package_versions:
        return [step_snapshot(step, space) for step in steps]
    snapshots = []
    for step in steps:
        references = []
        for reference in step.packages or []:
            picked = (
                package_versions.get(step.name)
                or package_versions.get(reference.get("PackageId", ""))
                or package_versions.get("*")
            )
            references.append({**reference, "Version": picked} if picked else reference)
        step.packages = references
        snapshots.append(step_snapshot(step, space))
    return snapshots


def variables_snapshot(project: Project) -> list[VariableSnapshot]:
    """Sensitive values stay Fernet ciphertext in the snapshot."""
    return [build_variable_snapshot(v) for v in project.variables.prefetch_related("environments")]


def process_changed_since(release: Release) -> bool:
    """Whether the project's deployment process differs from the release's snapshot (package pins aside)."""

    def shape(step: dict) -> dict:
        return {
            **step,
            "Packages": [p.get("PackageId") for p in step.get("Packages") or []],
            "WorkerPoolId": pool_id(step.get("WorkerPoolId")),
        }

    current = [
        shape(step_snapshot(step, release.project.space, pin_packages=False))
        for step in release.project.steps.filter(runbook__isnull=True)
    ]
    return current != [shape(step) for step in release.process_snapshot or []]


def pools_used(
    steps: list[dict], variables: list[dict], space: Space, environment: Environment | None
) -> list[WorkerPool]:
    """Every pool the process may run on in that environment (the server's steps use the default pool)."""
    ids = set()
    for step in steps:
        if step["ActionType"] != Step.ActionType.SCRIPT or step["IsDisabled"]:
            continue
        if step["Location"] == Step.Location.SERVER:
            ids |= set(WorkerPool.objects.filter(space=space, is_default=True).values_list("pk", flat=True))
        elif step["WorkerPoolVariable"]:
            ids |= {
                WorkerPool.pk_from_octopus_id(v["WorkerPoolId"])
                for v in variables
                if v["Name"] == step["WorkerPoolVariable"]
                and v["WorkerPoolId"]
                and (environment is None or not v["EnvironmentIds"] or environment.pk in v["EnvironmentIds"])
            }
        elif step["WorkerPoolId"]:
            ids.add(pool_pk(step["WorkerPoolId"]))
    return list(WorkerPool.objects.filter(space=space, pk__in=ids - {None}).order_by("sort_order", "name"))


def require_pools_usable(actor: User, pools) -> None:
    refused = [pool.name for pool in pools if not may_use(actor, pool, USE_POOL)]
    if refused:
        raise PermissionDenied(
            f"You may not run steps on the worker pool{'s' if len(refused) > 1 else ''} "
            f"{', '.join(refused)}: none of your teams has been granted it."
        )


# Releases and deployments ----------------------------------------------------------------------------


def next_release_version(project: Project) -> str:
    versions = list(project.releases.values_list("version", flat=True)[:50])
    for version in versions:
        match = re.fullmatch(r"(.*?)(\d+)", version)
        if match:
            return f"{match.group(1)}{int(match.group(2)) + 1}"
    return "0.0.1"


@transaction.atomic
def create_release(
    *,
    actor: User,
    project: Project,
    version: str = "",
    release_notes: str = "",
    channel: Channel | None = None,
    package_versions: dict[str, str] | None = None,
) -> Release:
    """A release in `channel` (None: the project's default channel), its packages pinned now."""
    require_permission(actor, Permission.RELEASE_CREATE, space=project.space)
    if channel is not None and channel.project_id != project.pk:
        raise ValidationError({"ChannelId": [f"{channel.name} is not a channel of {project.name}."]})
    channel = channel or default_channel(project)
    version = (version or "").strip() or next_release_version(project)
    if len(version) > 50 or not re.fullmatch(r"[0-9A-Za-z.+\-_]+", version):
        raise ValidationError(
            {"Version": ["A version is letters, digits, dots, dashes, pluses or underscores (at most 50)."]}
        )
    if project.releases.filter(version=version).exists():
        raise ValidationError({"Version": [f"{project.name} already has a release {version}."]})
    steps = project.steps.filter(runbook__isnull=True)
    if not steps.exists():
        raise ValidationError({"Project": [f"{project.name} has no deployment process steps yet: add one first."]})
    release = Release.objects.create(
        project=project,
        version=version,
        release_notes=release_notes,
        created_by=actor,
        channel=channel,
        process_snapshot=process_snapshot(steps, project.space, package_versions),
        variables_snapshot=variables_snapshot(project),
    )
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=release,
        message=f"Release {version} of {project.name} was created",
        changes={"version": [None, version]},
    )
    deploy_automatically(actor=actor, release=release)  # the first phase's automatic environments
    return release


def _check_environment(project: Project, environment: Environment) -> None:
    if environment.space_id != project.space_id:
        raise ValidationError({"EnvironmentId": [f"{environment.name} is not an environment of {project.space.name}."]})


@transaction.atomic
def deploy_release(
    *, actor: User, release: Release, environment: Environment, use_guided_failure: bool = False
) -> Deployment:
    project = release.project
    require_permission(actor, Permission.DEPLOYMENT_CREATE, space=project.space)
    _check_environment(project, environment)
    if project.is_disabled:
        raise ValidationError({"ProjectId": [f"{project.name} is disabled: enable it to deploy."]})
    require_promotable(release, environment)
    pools = pools_used(release.process_snapshot, release.variables_snapshot, project.space, environment)
    require_pools_usable(actor, pools)

    task = queue_server_task(
        space=project.space,
        name="Deploy",
        created_by=actor,
        celery_task=run_server_task_task,
        description=f"Deploy {project.name} release {release.version} to {environment.name}",
        arguments={
            "ReleaseId": release.octopus_id,
            "EnvironmentId": environment.octopus_id,
            "UseGuidedFailure": use_guided_failure or environment.use_guided_failure,
        },
        project=project,
        environment=environment,
        pools=pools,
    )
    deployment = Deployment.objects.create(
        release=release, environment=environment, task=task, created_by=actor, use_guided_failure=use_guided_failure
    )
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=deployment,
        message=f"Deploy {project.name} release {release.version} to {environment.name} "
        f"was queued as {task.octopus_id}",
    )
    return deployment


@transaction.atomic
def run_runbook(
    *,
    actor: User,
    runbook: Runbook,
    environment: Environment,
    snapshot: RunbookSnapshot | None = None,
    use_guided_failure: bool = False,
) -> RunbookRun:
    """Runs `snapshot` (a frozen process and variables) when given, else the runbook's process as it is now.
    `use_guided_failure`: a failed step waits for Retry, Ignore or Fail (as it does in a guided-failure environment)."""
    project = runbook.project
    require_permission(actor, Permission.RUNBOOK_RUN, space=project.space)
    _check_environment(project, environment)
    if snapshot is not None and snapshot.runbook_id != runbook.pk:
        raise ValidationError({"Snapshot": [f"{snapshot.name} is not a snapshot of {runbook.name}."]})
    steps = snapshot.process_snapshot if snapshot else process_snapshot(runbook.steps.all(), project.space)
    if not steps:
        raise ValidationError({"Runbook": [f"{runbook.name} has no steps yet: add one first."]})
    variables = snapshot.variables_snapshot if snapshot else variables_snapshot(project)
    pools = pools_used(steps, variables, project.space, environment)
    require_pools_usable(actor, pools)

    task = queue_server_task(
        space=project.space,
        name="RunbookRun",
        created_by=actor,
        celery_task=run_server_task_task,
        description=f"Run {runbook.name} in {environment.name}",
        arguments={
            "RunbookId": runbook.octopus_id,
            "EnvironmentId": environment.octopus_id,
            **({"RunbookSnapshotId": snapshot.octopus_id} if snapshot else {}),
            **({"UseGuidedFailure": True} if use_guided_failure else {}),
            "Process": steps,
            "Variables": variables,
        },
        project=project,
        environment=environment,
        pools=pools,
    )
    run = RunbookRun.objects.create(runbook=runbook, environment=environment, task=task)
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=run,
        message=f"Runbook {runbook.name} of {project.name} was run in {environment.name} as {task.octopus_id}",
    )
    return run


@transaction.atomic
def run_adhoc_script(
    *, actor: User, space: Space, syntax: str, script_body: str, worker_pool: WorkerPool | None = None, workers=()
) -> ServerTask:
    """Script Console: run a script once on a worker of a pool (chosen by the usual rules), or on each chosen worker."""
    require_permission(actor, Permission.TASK_CREATE, space=space)
    workers = list(workers)
    errors = {}
    if syntax not in Step.Syntax.values:
        errors["Syntax"] = [f"Choose one of {', '.join(Step.Syntax.values)}."]
    if not (script_body or "").strip():
        errors["ScriptBody"] = ["Write a script to run."]
    if (worker_pool is None) == (not workers):
        errors["Target"] = ["Choose a worker pool or some workers, not both."]
    if worker_pool is not None and worker_pool.space_id != space.pk:
        errors["WorkerPoolId"] = [f"{worker_pool.name} is not a worker pool of {space.name}."]
    if any(worker.space_id != space.pk for worker in workers):
        errors["WorkerIds"] = [f"Every worker must belong to {space.name}."]
    if errors:
        raise ValidationError(errors)
    pools = [worker_pool] if worker_pool else list(WorkerPool.objects.filter(workers__in=workers).distinct())
    if worker_pool is not None:
        require_pools_usable(actor, pools)
    else:
        require_permission(
            actor, Permission.WORKER_EDIT, space=space
        )  # running on chosen machines is a worker admin's act
    where = worker_pool.name if worker_pool else ", ".join(w.name for w in workers)

    step = build_step_snapshot(
        name="Run script",
        syntax=syntax,
        script_body=script_body,
        worker_pool_pk=worker_pool.pk if worker_pool else None,
    )
    task = queue_server_task(
        space=space,
        name="AdHocScript",
        created_by=actor,
        celery_task=run_server_task_task,
        description=f"Script Console: run a {syntax} script on {where}"[:500],
        arguments={"Process": [step], "Variables": [], "WorkerIds": [w.octopus_id for w in workers]},
        pools=pools,
    )
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=task,
        message=f"A {syntax} script was queued on {where} from the Script Console as {task.octopus_id}",
    )
    return task


def proceed_after_intervention(*, actor: User, task: ServerTask, proceed: bool = True, note: str = "") -> ServerTask:
    """A manual intervention's answer (deployments/services/interruptions.py): the task is re-queued, and
    workers are selected again when it restarts."""
    interruption = pending_interruption_of(task)
    if interruption is None:
        raise ValidationError({"Interruption": ["This task is not waiting for a manual intervention."]})
    action = interruption.results[0] if proceed else interruption.results[-1]  # Proceed/Abort; Retry/Fail
    submit_interruption(interruption=interruption, user=actor, action=action, note=note)
    task.refresh_from_db()
    return task


def rerun_server_task(*, actor: User, task: ServerTask) -> ServerTask:
    """Run the same thing again: a deployment of the same release, the same runbook, the same script."""
    if hasattr(task, "deployment"):
        return deploy_release(
            actor=actor, release=task.deployment.release, environment=task.deployment.environment
        ).task
    if hasattr(task, "runbook_run"):
        return run_runbook(actor=actor, runbook=task.runbook_run.runbook, environment=task.runbook_run.environment).task
    if task.name == "AdHocScript":
        step = task.arguments["Process"][0]
        ids = [Worker.pk_from_octopus_id(i) for i in task.arguments.get("WorkerIds", [])]
        return run_adhoc_script(
            actor=actor,
            space=task.space,
            syntax=step["Syntax"],
            script_body=step["ScriptBody"],
            worker_pool=WorkerPool.objects.filter(pk=pool_pk(step["WorkerPoolId"]) or 0).first(),
            workers=Worker.objects.filter(pk__in=ids, space=task.space),
        )
    raise ValidationError({"Task": [f"{task.name} tasks cannot be re-run from here."]})
