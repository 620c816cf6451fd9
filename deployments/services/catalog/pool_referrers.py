"""What refers to a worker pool (infrastructure.services.pools.pool_referrer_finders): a pool in use is not deleted."""

from __future__ import annotations

from deployments.models import Environment, Release, Step, Variable
from deployments.services.catalog.steps import step_where
from deployments.services.snapshots import pool_pk
from infrastructure.models import WorkerPool
from servertasks.models import ServerTask


def steps_using_pool(pool: WorkerPool) -> list[str]:
    return [
        f"step {step.name} of {step_where(step)}"
        for step in Step.objects.filter(worker_pool=pool)
        .select_related("project", "runbook")
        .order_by("project__name", "id")
    ]


def variables_using_pool(pool: WorkerPool) -> list[str]:
    return [
        f"the Worker Pool variable {v.name} of {v.project.name}"
        for v in Variable.objects.filter(worker_pool=pool).select_related("project").order_by("project__name", "name")
    ]


def releases_using_pool(pool: WorkerPool) -> list[str]:
    """Releases whose snapshot names the pool (a step's pool or a Worker Pool variable's value) and that have not yet
    been deployed successfully to every environment of the space: they may still be deployed, and would then fail."""
    environments = dict(Environment.objects.filter(space=pool.space_id).values_list("pk", "name"))
    found = []
    releases = (
        Release.objects.filter(project__space=pool.space_id)
        .select_related("project")
        .order_by("project__name", "-created")
    )
    for release in releases.iterator():
        uses = any(pool_pk(step.get("WorkerPoolId")) == pool.pk for step in release.process_snapshot or []) or any(
            pool_pk(variable.get("WorkerPoolId")) == pool.pk for variable in release.variables_snapshot or []
        )
        if not uses:
            continue
        deployed = set(
            release.deployments.filter(task__state=ServerTask.State.SUCCESS).values_list("environment_id", flat=True)
        )
        missing = [environments[pk] for pk in environments if pk not in deployed]
        if missing or not environments:
            found.append(
                f"release {release.version} of {release.project.name} (not yet deployed to "
                f"{', '.join(missing) if missing else 'any environment'})"
            )
    return found


POOL_REFERRER_FINDERS = (steps_using_pool, variables_using_pool, releases_using_pool)
