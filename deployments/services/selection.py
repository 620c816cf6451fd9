"""Worker selection, by Octopus's rules (DESIGN.md), when a task starts:

1. A step that resolves to the default pool, and that pool has no workers, runs on the built-in worker
   (unless Configuration ➜ Features disabled it: then the step fails before it starts).
2. Otherwise a healthy, enabled worker of the step's pool: the one with the fewest active leases,
   ties broken round-robin per pool (a Redis cursor, shared by all server nodes).
3. Steps that reference the same packages in the same order get the same worker (its package cache),
   unless that worker is much busier than its peers. "Busy" counts other tasks' leases, and this
   task's own only for steps that run at the same time (a parallel group): leases for its later
   steps are not load. Parallel steps that share packages spread over the pool while it has idle
   workers.
4. Routing around (`reroute`): a worker that could not be reached before its script started, or that
   was marked down since the task began, is replaced by another healthy worker of the same pool;
   when none is left, the step fails naming the pool and each worker's reason.

Every choice is a WorkerLease recorded against the task, deleted however the task ends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count

from deployments.models import Environment, ServerConfiguration, WorkerLease
from deployments.services.snapshots import pool_pk
from infrastructure.models import Worker, WorkerPool
from infrastructure.services.workers import workers_available_in_pool
from portal.redis import redis_client
from servertasks.models import ServerTask

# Package affinity yields once its worker holds this many more leases than the least busy peer.
AFFINITY_SLACK = 2


class SelectionError(Exception):
    """A step cannot get a worker; the message says why and what to do."""


@dataclass(frozen=True)
class Choice:
    worker: Worker | None  # None: the built-in worker
    pool: WorkerPool
    rule: str
    chosen_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def worker_name(self) -> str:
        return self.worker.name if self.worker else "the built-in worker"


def resolve_pool(step: dict, *, space, environment: Environment | None, variables: dict) -> tuple[WorkerPool, str]:
    """The step's pool and, in words, how it was found. `variables` maps names to resolved values."""
    name = step["Name"]
    if step["Location"] == "Server":
        pool = WorkerPool.objects.filter(space=space, is_default=True).first()
        if pool is None:
            raise SelectionError(f"Step {name!r} runs on the server, but the space has no default worker pool.")
        return pool, f"the step runs on the server, which means the default pool {pool.name}"
    if step.get("WorkerPoolVariable"):
        variable = step["WorkerPoolVariable"]
        where = f" for the environment {environment.name}" if environment else ""
        if variable not in variables:
            raise SelectionError(
                f"Step {name!r} takes its worker pool from the variable {variable}, which has no "
                f"value{where}. Give the variable a Worker Pool value scoped to that environment."
            )
        pool = WorkerPool.objects.filter(
            space=space, pk=WorkerPool.pk_from_octopus_id(variables[variable]) or 0
        ).first()
        if pool is None:
            raise SelectionError(
                f"Step {name!r} takes its worker pool from the variable {variable}, whose value "
                f"{variables[variable]!r}{where} is not a worker pool of this space."
            )
        return pool, f"the variable {variable} chose the pool {pool.name}{where}"
    pool = WorkerPool.objects.filter(space=space, pk=pool_pk(step.get("WorkerPoolId")) or 0).first()
    if pool is None:
        raise SelectionError(
            f"Step {name!r} has no worker pool (it was deleted or never set). Choose one in the step editor."
        )
    return pool, f"the step names the pool {pool.name}"


def _unusable_pool_message(pool: WorkerPool, step_name: str) -> str:
    workers = list(pool.workers.all())
    if not workers:
        return (
            f"Step {step_name!r} needs a worker from the pool {pool.name}, but that pool has no workers. "
            "Add a worker to it on Infrastructure ➜ Workers, or run the step on another pool."
        )
    states = ", ".join(f"{w.name} is {'disabled' if w.is_disabled else w.health_status}" for w in workers[:10])
    return (
        f"Step {step_name!r} needs a healthy, enabled worker from the pool {pool.name}, and it has none "
        f"({states}). Check their health on Infrastructure ➜ Workers."
    )


class WorkerSelector:
    """Chooses workers for one task's steps; one per task start (a re-queued task gets a new one)."""

    def __init__(self, task: ServerTask):
        self.task = task
        self.affinity: dict[tuple, tuple[Worker, str, int]] = {}
        self.group = 0  # steps in one group run at the same time
        self.in_group: dict[int, int] = {}  # worker pk -> this task's leases in the current group
        self.unreachable: dict[int, str] = {}  # worker pk -> why it failed this task before a script started
        self.rerouting = threading.Lock()  # parallel steps may re-plan at the same time

    def choose(self, pool: WorkerPool, step_name: str, packages: tuple = (), *, with_previous: bool = False) -> Choice:
        """`with_previous`: the step starts with the previous one (same group, so its leases are load)."""
        if not with_previous:
            self.group += 1
            self.in_group = {}
        if pool.is_default and not pool.workers.exists():
            if not ServerConfiguration.current().is_builtin_worker_enabled:
                raise SelectionError(
                    f"Step {step_name!r} resolves to the default pool {pool.name}, which has no workers, "
                    "so it would run on the built-in worker, but the built-in worker is disabled. "
                    "Add a worker to that pool, or enable the built-in worker in Configuration ➜ Features."
                )
            return Choice(None, pool, f"the default pool {pool.name} has no workers, so the built-in worker runs it")
        with transaction.atomic():
            # One chooser per pool at a time (across server nodes), so lease counts are current. SQLite has no
            # row locks: its transactions begin IMMEDIATE, one writer at a time, so this one already holds it.
            if connection.features.has_select_for_update:
                WorkerPool.objects.select_for_update().filter(pk=pool.pk).first()
            # The policy comes along: the chosen worker's transport reads its timeouts and retries.
            available = workers_available_in_pool(pool).select_related("machine_policy").order_by("pk")
            candidates = [w for w in available if w.pk not in self.unreachable]
            if not candidates:
                raise SelectionError(
                    _unusable_pool_message(pool, step_name)
                    if not self.unreachable
                    else self.nothing_left_message(pool, step_name)
                )
            leases = self.load(candidates)
            fewest = min(leases.get(w.pk, 0) for w in candidates)
            chosen, rule = self._by_affinity(pool, packages, candidates, leases, fewest)
            if chosen is None:
                cursor = redis_client().incr(f"{settings.REEF_STREAM_PREFIX}:selection:pool:{pool.pk}:cursor") - 1
                rotated = candidates[cursor % len(candidates) :] + candidates[: cursor % len(candidates)]
                chosen = min(rotated, key=lambda w: leases.get(w.pk, 0))  # min keeps the first of equals
                busy = leases.get(chosen.pk, 0)
                rule = (
                    f"round-robin among {len(candidates)} healthy workers of {pool.name}"
                    if busy == 0 and all(leases.get(w.pk, 0) == 0 for w in candidates)
                    else f"fewest active leases ({busy}) among {len(candidates)} healthy workers of {pool.name}"
                )
                if packages:
                    self.affinity[(pool.pk, packages)] = (chosen, step_name, self.group)
            return self.lease(chosen, pool, step_name, rule)

    def load(self, candidates: list[Worker]) -> dict[int, int]:
        """Leases per worker: other tasks', plus this task's in the current parallel group."""
        leases = dict(
            WorkerLease.objects.filter(worker__in=candidates)
            .exclude(task=self.task)
            .values_list("worker")
            .annotate(n=Count("id"))
        )
        for pk, n in self.in_group.items():
            leases[pk] = leases.get(pk, 0) + n
        return leases

    def lease(self, worker: Worker, pool: WorkerPool, step_name: str, rule: str) -> Choice:
        WorkerLease.objects.create(task=self.task, worker=worker, step_name=step_name[:200], rule=rule[:300])
        self.in_group[worker.pk] = self.in_group.get(worker.pk, 0) + 1
        return Choice(worker, pool, rule)

    def _by_affinity(self, pool, packages, candidates, leases, fewest):
        earlier = self.affinity.get((pool.pk, packages)) if packages else None
        if earlier is None:
            return None, ""
        worker, step_name, group = earlier
        if worker not in candidates or leases.get(worker.pk, 0) > fewest + AFFINITY_SLACK:
            return None, ""
        if group == self.group and leases.get(worker.pk, 0) > fewest:
            return None, ""  # a parallel step: an idle peer beats a warm cache that is busy right now
        return worker, f"it runs step {step_name!r}, which references the same packages (its package cache)"

    def reroute(self, choice: Choice, step_name: str, reason: str, packages: tuple = ()) -> Choice:
        """Another healthy worker of the pool for a step whose worker failed before its script
        started. Raises SelectionError naming the pool and each worker's reason when none is left."""
        with self.rerouting:
            if choice.worker is not None:
                self.unreachable[choice.worker.pk] = reason
                WorkerLease.objects.filter(task=self.task, worker=choice.worker, step_name=step_name[:200]).delete()
            self.group += 1  # on its own: only other tasks' leases count now
            self.in_group = {}
            chosen = self.choose(choice.pool, step_name, packages, with_previous=True)
        return Choice(chosen.worker, chosen.pool, chosen.rule)

    def nothing_left_message(self, pool: WorkerPool, step_name: str) -> str:
        reasons = []
        for worker in pool.workers.all()[:20]:
            if worker.pk in self.unreachable:
                reasons.append(f"{worker.name}: {self.unreachable[worker.pk]}")
            elif worker.is_disabled:
                reasons.append(f"{worker.name}: disabled")
            else:
                reasons.append(f"{worker.name}: {worker.health_status} ({worker.status_summary})")
        return (
            f"Step {step_name!r} could not reach any healthy worker of the pool {pool.name}: "
            + "; ".join(reasons)
            + ". Check their health on Infrastructure ➜ Workers."
        )


def release_leases(task: ServerTask) -> None:
    WorkerLease.objects.filter(task=task).delete()
