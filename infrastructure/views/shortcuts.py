"""What every infrastructure view needs: lookups that 404 outside the space, and URLs."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services.workers import workers_in_space
from portal.models import Space


def get_worker_pool_in_space(space: Space, pk: int) -> WorkerPool:
    return get_object_or_404(WorkerPool, pk=pk, space=space)


def get_worker_in_space(space: Space, pk: int) -> Worker:
    return get_object_or_404(workers_in_space(space).select_related("account"), pk=pk)


def get_machine_policy_in_space(space: Space, pk: int) -> MachinePolicy:
    return get_object_or_404(MachinePolicy, pk=pk, space=space)


def get_account_in_space(space: Space, pk: int) -> Account:
    return get_object_or_404(Account, pk=pk, space=space)


def space_url(space: Space, name: str, *args) -> str:
    return reverse(name, args=[space.octopus_id, *args])


def row_url_prefixes(space: Space) -> dict[str, str]:
    """`{{ workers_url }}{{ worker.pk }}/` in tables: one reverse() per page instead of several per row
    (the prefixes are the list URLs, and infrastructure/urls.py puts each object at `<pk>/` under its list)."""
    return {"workers_url": space_url(space, "workers"), "pools_url": space_url(space, "workerpools")}
