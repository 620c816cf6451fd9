"""Worker Pools: the list with live health counts, add, reorder; a pool's page, edit, make default, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from guardian.shortcuts import get_groups_with_perms

from infrastructure.forms import WorkerPoolEditForm, WorkerPoolForm
from infrastructure.models import WorkerPool
from infrastructure.services import pools
from infrastructure.services.workers import workers_in_space
from infrastructure.views import tables
from infrastructure.views.shortcuts import get_worker_pool_in_space, row_url_prefixes, space_url
from portal.models import Team
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import refuse, submit

WORKERS_PER_PAGE = 50


@space_page(P.WORKER_VIEW)
def overview(request, space):
    return redirect(space_url(space, "workerpools"))


@space_page(P.WORKER_VIEW)
def workerpool_list(request, space):
    form, status = WorkerPoolForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.WORKER_EDIT, space=space)
        form = WorkerPoolForm(request.POST)
        if pool := submit(form, lambda data: pools.create_worker_pool(actor=request.user, space=space, **data)):
            messages.success(request, f"Worker pool {pool.name} added.")
            return redirect(space_url(space, "workerpool", pool.pk))
        status = 400
    may_edit = may(request, P.WORKER_EDIT)
    return render(
        request,
        "infrastructure/workerpools.html",
        {"space": space, "may_edit": may_edit, "pool_rows": _pool_rows(request, space, may_edit), "form": form},
        status=status,
    )


@require_GET
@space_page(P.WORKER_VIEW)
def workerpool_rows(request, space):
    """The table body alone, polled by htmx so health counts change without a reload."""
    return HttpResponse(_pool_rows(request, space, may(request, P.WORKER_EDIT)))


def _pool_rows(request, space, may_edit: bool) -> str:
    # Those who may edit get the move buttons, each form with the token field {% csrf_token %} writes.
    token = get_token(request) if may_edit else None
    csrf_input = format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token) if token else ""
    return tables.worker_pool_rows(
        list(pools.pools_with_health_counts(space)),
        pools_url=row_url_prefixes(space)["pools_url"],
        may_edit=may_edit,
        csrf_input=csrf_input,
    )


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_move(request, space, pk: int, direction: str):
    if direction not in ("up", "down"):
        raise Http404("Pools move up or down.")
    pool = get_worker_pool_in_space(space, pk)
    ordered = list(WorkerPool.objects.filter(space=space).order_by("sort_order", "name").values_list("pk", flat=True))
    i = ordered.index(pool.pk)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ordered):
        ordered[i], ordered[j] = ordered[j], ordered[i]
        try:
            pools.reorder_worker_pools(actor=request.user, space=space, ordered_ids=ordered)
        except ValidationError as error:  # a pool was added or deleted meanwhile
            refuse(request, error)
    return redirect(space_url(space, "workerpools"))


@space_page(P.WORKER_VIEW)
def workerpool_detail(request, space, pk: int):
    pool = get_worker_pool_in_space(space, pk)
    initial = {"name": pool.name, "description": pool.description, "worker_type": pool.worker_type}
    form, status = WorkerPoolEditForm(initial=initial, pool=pool), 200
    if request.method == "POST":
        require_permission(request.user, P.WORKER_EDIT, space=space)
        form = WorkerPoolEditForm(request.POST, pool=pool)
        if submit(form, lambda data: pools.update_worker_pool(actor=request.user, pool=pool, **data)):
            messages.success(request, f"Worker pool {form.cleaned_data['name']} saved.")
            return redirect(space_url(space, "workerpool", pool.pk))
        status = 400
    teams, granted = _pool_teams(pool)
    return render(
        request,
        "infrastructure/workerpool_detail.html",
        {**_pool_workers_context(request, space, pool), "form": form, "teams": teams, "granted": granted},
        status=status,
    )


@require_GET
@space_page(P.WORKER_VIEW)
def workerpool_workers(request, space, pk: int):
    """The pool's workers table alone, polled by htmx."""
    pool = get_worker_pool_in_space(space, pk)
    return render(request, "infrastructure/_pool_workers.html", _pool_workers_context(request, space, pool))


def _pool_workers_context(request, space, pool) -> dict:
    rows = workers_in_space(space).filter(worker_pools=pool).order_by("name")
    page = Paginator(rows, WORKERS_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "space": space,
        "pool": pool,
        "page": page,
        "may_edit": may(request, P.WORKER_EDIT),
        **row_url_prefixes(space),
    }


def _pool_teams(pool) -> tuple[list, set[int]]:
    """Teams that could be granted the pool, and the ids of those that are."""
    candidates = list(Team.objects.filter(Q(space=pool.space) | Q(space__isnull=True)).order_by("name"))
    granted = set(get_groups_with_perms(pool, only_with_perms_in=["use_workerpool"]).values_list("pk", flat=True))
    return candidates, {team.pk for team in candidates if team.group_id in granted}


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_teams(request, space, pk: int):
    """Who may run steps on this pool: no team ticked means everyone who may deploy."""
    pool = get_worker_pool_in_space(space, pk)
    candidates, _ = _pool_teams(pool)
    wanted = set(request.POST.getlist("teams"))
    try:
        pools.set_teams_that_may_use_pool(
            actor=request.user, pool=pool, teams=[t for t in candidates if str(t.pk) in wanted]
        )
    except ValidationError as error:
        refuse(request, error)
    else:
        messages.success(request, f"Saved who may use {pool.name}.")
    return redirect(space_url(space, "workerpool", pool.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_make_default(request, space, pk: int):
    pool = get_worker_pool_in_space(space, pk)
    try:
        pools.make_default_worker_pool(actor=request.user, pool=pool)
    except ValidationError as error:
        refuse(request, error)
    else:
        messages.success(request, f"{pool.name} is now the default worker pool.")
    return redirect(space_url(space, "workerpool", pool.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_delete(request, space, pk: int):
    pool = get_worker_pool_in_space(space, pk)
    try:
        pools.delete_worker_pool(actor=request.user, pool=pool)
    except ValidationError as error:
        refuse(request, error)
        return redirect(space_url(space, "workerpool", pool.pk))
    messages.success(request, f"Worker pool {pool.name} deleted.")
    return redirect(space_url(space, "workerpools"))
