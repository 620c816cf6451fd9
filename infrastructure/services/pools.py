"""Worker pools: create, edit, reorder, make default, delete."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, QuerySet
from guardian.shortcuts import assign_perm, get_groups_with_perms, remove_perm

from infrastructure.models import Worker, WorkerPool
from portal.models import Event, Space, Team, User
from portal.services.audit import differences, record_event, snapshot

_AUDITED = ["name", "description", "sort_order", "is_default", "pool_type", "worker_type"]
DEFAULT_POOL_NAME = "Default Worker Pool"

# Other apps add callables (pool) -> list[str] naming what refers to a pool (steps, variables, releases).
pool_referrer_finders: list = []


def ensure_default_worker_pool(space: Space) -> WorkerPool:
    pool = WorkerPool.objects.filter(space=space, is_default=True).first()
    if pool is None:
        pool, _ = WorkerPool.objects.get_or_create(
            space=space, name=DEFAULT_POOL_NAME, defaults={"is_default": True, "sort_order": 0}
        )
    return pool


def pools_with_health_counts(space: Space) -> QuerySet[WorkerPool]:
    """Pools in sort order with their worker counts per health status: one query, however many workers."""
    statuses = Worker.HealthStatus
    counts = {
        f"count_{s.value}": Count("workers", filter=Q(workers__health_status=s.value, workers__is_disabled=False))
        for s in statuses
    }
    return (
        WorkerPool.objects.filter(space=space)
        .annotate(
            worker_count=Count("workers"),
            disabled_count=Count("workers", filter=Q(workers__is_disabled=True)),
            **counts,
        )
        .order_by("sort_order", "name")
    )


def _clean_name(space: Space, name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A worker pool needs a name."})
    if len(name) > 200:
        raise ValidationError({"name": "A worker pool name has at most 200 characters."})
    if WorkerPool.objects.filter(space=space, name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ValidationError({"name": f"A worker pool named {name!r} already exists in {space.name}."})
    return name


@transaction.atomic
def create_worker_pool(
    *,
    actor: User | None,
    space: Space,
    name: str,
    description: str = "",
    pool_type: str = WorkerPool.PoolType.STATIC,
    worker_type: str = "",
    is_default: bool = False,
) -> WorkerPool:
    name = _clean_name(space, name)
    if pool_type not in WorkerPool.PoolType.values:
        raise ValidationError(
            {"pool_type": f"{pool_type!r} is not a worker pool type ({', '.join(WorkerPool.PoolType.values)})."}
        )
    if pool_type == WorkerPool.PoolType.DYNAMIC and not worker_type.strip():
        raise ValidationError({"worker_type": "A dynamic worker pool needs a worker type."})
    next_order = (WorkerPool.objects.filter(space=space).aggregate(m=Max("sort_order"))["m"] or 0) + 1
    try:
        pool = WorkerPool.objects.create(
            space=space,
            name=name,
            description=description,
            pool_type=pool_type,
            worker_type=worker_type.strip() if pool_type == WorkerPool.PoolType.DYNAMIC else "",
            sort_order=next_order,
        )
    except IntegrityError:
        raise ValidationError({"name": f"A worker pool named {name!r} already exists in {space.name}."}) from None
    record_event(
        actor=actor, category=Event.Category.CREATED, document=pool, changes=differences({}, snapshot(pool, _AUDITED))
    )
    if is_default:
        pool = make_default_worker_pool(actor=actor, pool=pool)
    return pool


@transaction.atomic
def update_worker_pool(
    *,
    actor: User,
    pool: WorkerPool,
    name: str | None = None,
    description: str | None = None,
    sort_order: int | None = None,
    worker_type: str | None = None,
) -> WorkerPool:
    pool = WorkerPool.objects.select_for_update().get(pk=pool.pk)
    before = snapshot(pool, _AUDITED)
    if name is not None:
        pool.name = _clean_name(pool.space, name, exclude_pk=pool.pk)
    if description is not None:
        pool.description = description
    if sort_order is not None:
        pool.sort_order = sort_order
    if worker_type is not None and pool.pool_type == WorkerPool.PoolType.DYNAMIC:
        if not worker_type.strip():
            raise ValidationError({"worker_type": "A dynamic worker pool needs a worker type."})
        pool.worker_type = worker_type.strip()
    pool.save()
    changes = differences(before, snapshot(pool, _AUDITED))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=pool, changes=changes)
    return pool


@transaction.atomic
def make_default_worker_pool(*, actor: User, pool: WorkerPool) -> WorkerPool:
    """Moves the default atomically: the space row is locked, so concurrent calls take turns."""
    Space.objects.select_for_update().get(pk=pool.space_id)
    previous = WorkerPool.objects.filter(space_id=pool.space_id, is_default=True).exclude(pk=pool.pk).first()
    if previous is None and WorkerPool.objects.filter(pk=pool.pk, is_default=True).exists():
        return WorkerPool.objects.get(pk=pool.pk)
    WorkerPool.objects.filter(space_id=pool.space_id, is_default=True).update(is_default=False)
    WorkerPool.objects.filter(pk=pool.pk).update(is_default=True)
    pool = WorkerPool.objects.get(pk=pool.pk)
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document=pool,
        message=f"{pool.name} is now the default worker pool" + (f" (was {previous.name})" if previous else ""),
        changes={"is_default": [False, True]},
    )
    return pool


@transaction.atomic
def reorder_worker_pools(*, actor: User, space: Space, ordered_ids: list[int]) -> None:
    pools = {p.pk: p for p in WorkerPool.objects.select_for_update().filter(space=space)}
    if set(ordered_ids) != set(pools) or len(ordered_ids) != len(pools):
        raise ValidationError({"order": "Give every worker pool of the space exactly once."})
    for position, pk in enumerate(ordered_ids):
        WorkerPool.objects.filter(pk=pk).update(sort_order=position)
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document_type="WorkerPool",
        space=space,
        message="Worker pools reordered: " + ", ".join(pools[pk].name for pk in ordered_ids),
    )


@transaction.atomic
def delete_worker_pool(*, actor: User, pool: WorkerPool) -> None:
    pool = WorkerPool.objects.select_for_update().get(pk=pool.pk)
    if pool.is_default:
        raise ValidationError("The default worker pool cannot be deleted: make another pool the default first.")
    referrers = [r for finder in pool_referrer_finders for r in finder(pool)]
    if referrers:
        raise ValidationError(
            f"{pool.name} is in use and cannot be deleted. It is referred to by: " + "; ".join(referrers) + "."
        )
    stranded = list(pool.workers.annotate(n=Count("worker_pools")).filter(n=1).values_list("name", flat=True))
    if stranded:
        raise ValidationError(
            f"{pool.name} is the only pool of these workers; move or delete them first: " + ", ".join(stranded) + "."
        )
    record_event(actor=actor, category=Event.Category.DELETED, document=pool)
    pool.delete()


@transaction.atomic
def set_teams_that_may_use_pool(*, actor: User, pool: WorkerPool, teams) -> None:
    """django-guardian grants: once any team holds one, only members of granted teams may run steps on the pool."""
    teams = list(teams)
    if any(team.space_id not in (None, pool.space_id) for team in teams):
        raise ValidationError({"teams": "Only teams of this space, or system teams, can be granted its pools."})
    wanted = {team.group_id for team in teams}
    current = set(get_groups_with_perms(pool, only_with_perms_in=["use_workerpool"]).values_list("pk", flat=True))
    for team in teams:
        if team.group_id not in current:
            assign_perm("use_workerpool", team.group, pool)
    for team in Team.objects.filter(group_id__in=current - wanted):
        remove_perm("use_workerpool", team.group, pool)
    names = sorted(team.name for team in teams)
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document=pool,
        message=f"Teams that may use {pool.name}: {', '.join(names) if names else 'everyone'}",
        changes={"teams": [None, names]},
    )
