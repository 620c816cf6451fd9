"""Infrastructure ➜ Worker Pools, Workers, Machine Policies, Accounts. Views are thin: look up
(404 outside the space), check the permission, validate, call a service."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from infrastructure.forms import (AccountForm, MachinePolicyForm, SshWorkerForm, TentacleWorkerForm, WorkerFilterForm,
                                  WorkerPoolEditForm, WorkerPoolForm)
from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services import accounts, health, policies, pools, workers
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.policies import FIELDS as POLICY_FIELDS
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports import TransportError
from infrastructure.transports.ssh import discover_host_key
from portal.permissions import Permission as P
from portal.services.access import has_permission, require_permission
from portal.views.decorators import space_page
from portal.views.pages import _add_errors

Style = Worker.CommunicationStyle


def _url(space, name, *args):
    return reverse(name, args=[space.octopus_id, *args])


def _refused(request, error: ValidationError) -> None:
    messages.error(request, " ".join(error.messages))


# Worker pools ---------------------------------------------------------------------------------

@space_page(P.WORKER_VIEW)
def overview(request, space):
    return redirect(_url(space, "workerpools"))


@space_page(P.WORKER_VIEW)
def workerpool_list(request, space):
    form, status = WorkerPoolForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.WORKER_EDIT, space=space)
        form = WorkerPoolForm(request.POST)
        if form.is_valid():
            try:
                pool = pools.create_worker_pool(actor=request.user, space=space, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Worker pool {pool.name} created.")
                return redirect(_url(space, "workerpool", pool.pk))
        status = 400
    template = "infrastructure/_workerpool_rows.html" if request.headers.get("HX-Request") else "infrastructure/workerpools.html"
    return render(request, template, {
        "space": space, "pools": pools.pools_with_health_counts(space), "form": form,
        "statuses": Worker.HealthStatus.values, "may_edit": has_permission(request.user, P.WORKER_EDIT, space=space),
    }, status=status)


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_move(request, space, pk: int, direction: str):
    ordered = list(WorkerPool.objects.filter(space=space).order_by("sort_order", "name").values_list("pk", flat=True))
    if pk not in ordered:
        return redirect(_url(space, "workerpools"))
    i = ordered.index(pk)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ordered):
        ordered[i], ordered[j] = ordered[j], ordered[i]
        pools.reorder_worker_pools(actor=request.user, space=space, ordered_ids=ordered)
    return redirect(_url(space, "workerpools"))


@space_page(P.WORKER_VIEW)
def workerpool_detail(request, space, pk: int):
    pool = get_object_or_404(WorkerPool, pk=pk, space=space)
    form, status = WorkerPoolEditForm(initial={"name": pool.name, "description": pool.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.WORKER_EDIT, space=space)
        form = WorkerPoolEditForm(request.POST)
        if form.is_valid():
            try:
                pools.update_worker_pool(actor=request.user, pool=pool, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, "Worker pool saved.")
                return redirect(_url(space, "workerpool", pool.pk))
        status = 400
    page = Paginator(workers.workers_in_space(space).filter(worker_pools=pool).order_by("name"), 50).get_page(request.GET.get("page"))
    return render(request, "infrastructure/workerpool_detail.html", {
        "space": space, "pool": pool, "form": form, "page": page,
        "may_edit": has_permission(request.user, P.WORKER_EDIT, space=space)}, status=status)


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_make_default(request, space, pk: int):
    pool = get_object_or_404(WorkerPool, pk=pk, space=space)
    pools.make_default_worker_pool(actor=request.user, pool=pool)
    messages.success(request, f"{pool.name} is now the default worker pool.")
    return redirect(_url(space, "workerpool", pool.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def workerpool_delete(request, space, pk: int):
    pool = get_object_or_404(WorkerPool, pk=pk, space=space)
    try:
        pools.delete_worker_pool(actor=request.user, pool=pool)
    except ValidationError as error:
        _refused(request, error)
        return redirect(_url(space, "workerpool", pool.pk))
    messages.success(request, f"Worker pool {pool.name} deleted.")
    return redirect(_url(space, "workerpools"))


# Workers --------------------------------------------------------------------------------------

@space_page(P.WORKER_VIEW)
def worker_list(request, space):
    form = WorkerFilterForm(request.GET or None, space=space)
    rows = workers.workers_in_space(space).order_by("name")
    if form.is_valid():
        f = form.cleaned_data
        if f["name"]:
            rows = rows.filter(name__icontains=f["name"])
        if f["pool"]:
            rows = rows.filter(worker_pools=f["pool"])
        if f["health_status"]:
            rows = rows.filter(health_status=f["health_status"])
        if f["communication_style"]:
            rows = rows.filter(communication_style=f["communication_style"])
        if f["disabled"]:
            rows = rows.filter(is_disabled=f["disabled"] == "yes")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    querystring = request.GET.copy()
    querystring.pop("page", None)
    template = "infrastructure/_worker_rows.html" if request.headers.get("HX-Request") else "infrastructure/workers.html"
    return render(request, template, {
        "space": space, "form": form, "page": page, "querystring": querystring.urlencode(),
        "may_edit": has_permission(request.user, P.WORKER_EDIT, space=space)}, status=200 if not form.errors else 400)


WIZARD_STYLES = {"listening": Style.LISTENING, "polling": Style.POLLING, "ssh": Style.SSH}
PLATFORMS = {"linux": "Linux", "mac": "Mac", "windows": "Windows"}


@space_page(P.WORKER_EDIT)
def worker_add(request, space):
    """Step 1: the platform; step 2: the communication style (Octopus's Add Worker wizard)."""
    return render(request, "infrastructure/worker_add.html", {
        "space": space, "platform": request.GET.get("platform") if request.GET.get("platform") in PLATFORMS else None,
        "platforms": PLATFORMS})


@space_page(P.WORKER_EDIT)
def worker_add_style(request, space, platform: str, style: str):
    if platform not in PLATFORMS or style not in WIZARD_STYLES:
        return redirect(_url(space, "worker-add"))
    communication_style = WIZARD_STYLES[style]
    form_class = SshWorkerForm if communication_style == Style.SSH else TentacleWorkerForm
    initial = {"port": 22} if style == "ssh" else {"uri": "https://HOST:10933/" if style == "listening" else ""}
    form = form_class(request.POST or None, space=space, initial=initial)
    discovered = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            if style == "ssh" and (not data["fingerprint"] or not data["confirm_fingerprint"] or "discover" in request.POST):
                discovered = _discover(form, data)  # show it; the user confirms before it is pinned
                status = 200 if discovered else 400
            else:
                worker = _register(request, space, form, communication_style, data)
                if worker is not None:
                    messages.success(request, f"Worker {worker.name} added. Check its health to see it turn Healthy.")
                    return redirect(_url(space, "worker", worker.pk))
    certificate = current_server_certificate()
    base = request.build_absolute_uri("/").rstrip("/")
    default_pool = WorkerPool.objects.filter(space=space, is_default=True).first()
    install = (f'curl -fsSL {base}/infrastructure/tentacle/install.sh | sudo bash -s -- --server {base} '
               f'--apikey API-YOURKEY --workerpool "{default_pool.name if default_pool else ""}" --space "{space.name}" '
               f'--server-thumbprint {certificate.thumbprint}' + (" --polling" if style == "polling" else ""))
    return render(request, "infrastructure/worker_add_style.html", {
        "space": space, "platform": PLATFORMS[platform], "style": style, "style_label": communication_style.label,
        "form": form, "discovered": discovered, "server_thumbprint": certificate.thumbprint, "install_command": install,
    }, status=status)


def _discover(form, data) -> tuple[str, str] | None:
    try:
        key_type, fingerprint = discover_host_key(data["host"], data["port"], timeout=10)
    except TransportError as error:
        form.add_error("host", str(error))
        return None
    # Re-bind with the discovered fingerprint so the confirm step posts it back.
    form.data = form.data.copy()
    form.data["fingerprint"] = fingerprint
    return key_type, fingerprint


def _register(request, space, form, communication_style, data) -> Worker | None:
    endpoint = Endpoint(communication_style=communication_style)
    if communication_style == Style.SSH:
        endpoint.host, endpoint.port, endpoint.account, endpoint.fingerprint = data["host"], data["port"], data["account_id"], data["fingerprint"]
    else:
        endpoint.uri, endpoint.thumbprint = data["uri"], data["thumbprint"]
    spec = WorkerSpec(name=data["name"], worker_pools=list(data["worker_pool_ids"]), machine_policy=data["machine_policy_id"],
                      endpoint=endpoint)
    try:
        return workers.register_worker(actor=request.user, space=space, spec=spec)
    except ValidationError as error:
        _add_errors(form, error)
        return None


@space_page(P.WORKER_VIEW)
def worker_detail(request, space, pk: int):
    worker = get_object_or_404(workers.workers_in_space(space).select_related("account"), pk=pk)
    template = "infrastructure/_worker_status.html" if request.headers.get("HX-Request") else "infrastructure/worker_detail.html"
    return render(request, template, {
        "space": space, "worker": worker, "may_edit": has_permission(request.user, P.WORKER_EDIT, space=space),
        "recent_tasks": _recent_health_tasks(worker) if has_permission(request.user, P.TASK_VIEW, space=space) else []})


def _recent_health_tasks(worker: Worker) -> list:
    # Filtered in Python: JSON containment queries are PostgreSQL-only, and SQLite is the first-run default.
    recent = worker.space.server_tasks.filter(name="Health")[:50]
    return [task for task in recent if worker.octopus_id in task.arguments.get("WorkerIds", [])][:5]


@space_page(P.WORKER_EDIT)
@require_POST
def worker_check_health(request, space, pk: int):
    worker = get_object_or_404(Worker, pk=pk, space=space)
    task = health.request_health_check(actor=request.user, worker=worker)
    messages.info(request, f"Health check queued as {task.octopus_id}.")
    return redirect(_url(space, "worker", worker.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def worker_toggle(request, space, pk: int):
    worker = get_object_or_404(Worker, pk=pk, space=space)
    workers.set_worker_disabled(actor=request.user, worker=worker, disabled=not worker.is_disabled)
    return redirect(_url(space, "worker", worker.pk))


@space_page(P.WORKER_EDIT)
@require_POST
def worker_delete(request, space, pk: int):
    worker = get_object_or_404(Worker, pk=pk, space=space)
    workers.delete_worker(actor=request.user, worker=worker)
    messages.success(request, f"Worker {worker.name} deleted.")
    return redirect(_url(space, "workers"))


# Machine policies -----------------------------------------------------------------------------

@space_page(P.MACHINE_POLICY_VIEW)
def machinepolicy_list(request, space):
    return render(request, "infrastructure/machinepolicies.html", {
        "space": space, "policies": MachinePolicy.objects.filter(space=space),
        "may_edit": has_permission(request.user, P.MACHINE_POLICY_EDIT, space=space)})


@space_page(P.MACHINE_POLICY_VIEW)
def machinepolicy_edit(request, space, pk: int | None = None):
    policy = get_object_or_404(MachinePolicy, pk=pk, space=space) if pk else None
    initial = {f: getattr(policy, f) for f in POLICY_FIELDS} if policy else {
        f.name: f.default for f in MachinePolicy._meta.fields if f.name in POLICY_FIELDS}
    form, status = MachinePolicyForm(initial=initial), 200
    if request.method == "POST":
        require_permission(request.user, P.MACHINE_POLICY_EDIT, space=space)
        form = MachinePolicyForm(request.POST)
        if form.is_valid():
            try:
                if policy:
                    policy = policies.update_machine_policy(actor=request.user, policy=policy, **form.cleaned_data)
                else:
                    policy = policies.create_machine_policy(actor=request.user, space=space, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Machine policy {policy.name} saved.")
                return redirect(_url(space, "machinepolicies"))
        status = 400
    return render(request, "infrastructure/machinepolicy_edit.html", {
        "space": space, "policy": policy, "form": form,
        "may_edit": has_permission(request.user, P.MACHINE_POLICY_EDIT, space=space)}, status=status)


# Accounts -------------------------------------------------------------------------------------

@space_page(P.ACCOUNT_VIEW)
def account_list(request, space):
    form, status = AccountForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.ACCOUNT_EDIT, space=space)
        form = AccountForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                account = accounts.save_account(actor=request.user, space=space, name=d["name"], account_type=d["account_type"],
                                                 username=d["username"], description=d["description"],
                                                 private_key=d["private_key"] or None, passphrase=d["passphrase"],
                                                 password=d["password"] or None)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Account {account.name} saved. Its secrets are stored encrypted and not shown again.")
                return redirect(_url(space, "accounts"))
        status = 400
    return render(request, "infrastructure/accounts.html", {
        "space": space, "accounts": Account.objects.filter(space=space), "form": form,
        "may_edit": has_permission(request.user, P.ACCOUNT_EDIT, space=space)}, status=status)
