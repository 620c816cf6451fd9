"""Workers: the filtered, paged, live list; a worker's page, edit, check health, enable/disable, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import ChoiceField
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from infrastructure.forms import WorkerEditForm, WorkerFilterForm
from infrastructure.models import Worker
from infrastructure.services import workers
from infrastructure.services.health import request_health_check
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.views import tables
from infrastructure.views.shortcuts import get_worker_in_space, row_url_prefixes, space_url
from portal.permissions import Permission as P
from portal.views.decorators import may, space_page
from portal.views.forms import refuse, submit

Style = Worker.CommunicationStyle
WORKERS_PER_PAGE = 50
# What a row of the list shows: not the machine policy, the last check's log or the capabilities.
_LISTED = ["name", "is_disabled", "health_status", "last_health_check", "communication_style", "uri", "host", "port"]


@space_page(P.WORKER_VIEW)
def worker_list(request, space):
    context = _list_context(request, space)
    # The filters' <select>s are written in one pass: the template engine, an <option> at a time, was slow with
    # many pools. Text inputs render as Django renders them.
    context["filter_fields"] = [
        (field, tables.select_options(field) if isinstance(field.field, ChoiceField) else None)
        for field in context["form"].visible_fields()
    ]
    return render(request, "infrastructure/workers.html", context, status=400 if context["form"].errors else 200)


@require_GET
@space_page(P.WORKER_VIEW)
def worker_rows(request, space):
    """The table alone (same filters and page), polled by htmx so health changes without a reload."""
    context = _list_context(request, space)
    return render(request, "infrastructure/_worker_rows.html", context, status=400 if context["form"].errors else 200)


def _list_context(request, space) -> dict:
    form = WorkerFilterForm(request.GET, space=space)
    rows = workers.workers_in_space(space).select_related(None).prefetch_related(None).only(*_LISTED).order_by("name")
    if form.is_valid():
        rows = form.filter(rows)
    page = Paginator(rows, WORKERS_PER_PAGE).get_page(request.GET.get("page"))
    urls = row_url_prefixes(space)
    querystring = request.GET.copy()
    querystring.pop("page", None)
    return {
        "space": space,
        "form": form,
        "page": page,
        "rows": tables.worker_rows(page, workers.pools_of_workers([w.pk for w in page]), **urls),
        "querystring": querystring.urlencode(),
        "filtered": any(form.data.get(name) for name in form.fields),
        "may_edit": may(request, P.WORKER_EDIT),
    }


@space_page(P.WORKER_VIEW)
def worker_detail(request, space, pk: int):
    worker = get_worker_in_space(space, pk)
    return render(
        request,
        "infrastructure/worker_detail.html",
        {
            **_status_context(space, worker),
            "may_edit": may(request, P.WORKER_EDIT),
            "recent_tasks": _recent_health_tasks(space, worker) if may(request, P.TASK_VIEW) else [],
        },
    )


@require_GET
@space_page(P.WORKER_VIEW)
def worker_status(request, space, pk: int):
    """Health, summary, capabilities and the last check's log, polled by htmx."""
    return render(request, "infrastructure/_worker_status.html", _status_context(space, get_worker_in_space(space, pk)))


def _status_context(space, worker: Worker) -> dict:
    return {"space": space, "worker": worker, "capabilities": capability_rows(worker.capabilities or {})}


_CAPABILITY_LABELS = {
    "OperatingSystem": "Operating system",
    "Architecture": "Architecture",
    "Kernel": "Kernel",
    "Hostname": "Host name",
    "Shells": "Shells",
    "ShellVersion": "Bash version",
    "Tools": "Tools on PATH",
    "AgentVersion": "Agent version",
    "PythonVersion": "Python",
    "Transport": "Transport",
}


def capability_rows(capabilities: dict) -> list[tuple[str, str, object]]:
    """(label, kind, value) for the worker page: known capabilities first, in a sensible order, then the rest.
    kind is "list" for names shown as badges (Tools: name → path), else "text"."""
    rows = []
    for key in [*_CAPABILITY_LABELS, *sorted(set(capabilities) - set(_CAPABILITY_LABELS))]:
        value = capabilities.get(key)
        if value in (None, "", [], {}):
            continue
        label = _CAPABILITY_LABELS.get(key, key)
        if isinstance(value, dict):
            rows.append((label, "list", sorted(value.items())))
        elif isinstance(value, list):
            rows.append((label, "list", [(str(item), "") for item in value]))
        else:
            rows.append((label, "text", str(value)))
    return rows


def _recent_health_tasks(space, worker: Worker) -> list:
    # Filtered in Python: JSON containment queries are PostgreSQL-only, and SQLite is the first-run default.
    recent = space.server_tasks.filter(name="Health")[:50]
    return [task for task in recent if worker.octopus_id in (task.arguments or {}).get("WorkerIds", [])][:5]


@space_page(P.WORKER_EDIT)
def worker_edit(request, space, pk: int):
    worker = get_worker_in_space(space, pk)
    style = worker.communication_style
    form, status = WorkerEditForm(initial=_edit_initial(worker), space=space, style=style), 200
    if request.method == "POST":
        form = WorkerEditForm(request.POST, space=space, style=style)
        if submit(
            form, lambda data: workers.update_worker(actor=request.user, worker=worker, spec=_spec(worker, data))
        ):
            messages.success(request, f"Worker {form.cleaned_data['name']} saved.")
            return redirect(space_url(space, "worker", worker.pk))
        status = 400
    return render(
        request, "infrastructure/worker_edit.html", {"space": space, "worker": worker, "form": form}, status=status
    )


def _edit_initial(worker: Worker) -> dict:
    return {
        "name": worker.name,
        "worker_pool_ids": list(worker.worker_pools.all()),
        "machine_policy_id": worker.machine_policy_id,
        "uri": worker.uri,
        "thumbprint": worker.thumbprint,
        "host": worker.host,
        "port": worker.port,
        "account_id": worker.account_id,
        "fingerprint": worker.fingerprint,
    }


def _spec(worker: Worker, data: dict) -> WorkerSpec:
    endpoint = Endpoint(communication_style=worker.communication_style)
    if worker.communication_style == Style.SSH:
        endpoint.host, endpoint.port = data["host"], data["port"]
        endpoint.account, endpoint.fingerprint = data["account_id"], data["fingerprint"]
    else:
        endpoint.uri, endpoint.thumbprint = data["uri"], data["thumbprint"]
    return WorkerSpec(
        name=data["name"],
        endpoint=endpoint,
        worker_pools=list(data["worker_pool_ids"]),
        machine_policy=data["machine_policy_id"],
        is_disabled=worker.is_disabled,
    )


@space_page(P.WORKER_EDIT)
@require_POST
def worker_check_health(request, space, pk: int):
    # Imported here: health checks are their own module, and this page must not depend on it to load.

    worker = get_worker_in_space(space, pk)
    try:
        task = request_health_check(actor=request.user, worker=worker)
    except ValidationError as error:
        refuse(request, error)
    else:
        queued = f" as {task.octopus_id}" if getattr(task, "octopus_id", None) else ""
        messages.info(request, f"Health check of {worker.name} queued{queued}. This page updates when it finishes.")
    return redirect(space_url(space, "worker", worker.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def worker_set_disabled(request, space, pk: int, disabled: bool):
    worker = get_worker_in_space(space, pk)
    workers.set_worker_disabled(actor=request.user, worker=worker, disabled=disabled)
    messages.success(
        request, f"Worker {worker.name} {'disabled: no new steps will run on it' if disabled else 'enabled'}."
    )
    return redirect(space_url(space, "worker", worker.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def worker_delete(request, space, pk: int):
    worker = get_worker_in_space(space, pk)
    try:
        workers.delete_worker(actor=request.user, worker=worker)
    except ValidationError as error:
        refuse(request, error)
        return redirect(space_url(space, "worker", worker.pk))
    messages.success(request, f"Worker {worker.name} deleted.")
    return redirect(space_url(space, "workers"))
