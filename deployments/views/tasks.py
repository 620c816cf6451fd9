"""Tasks: the list, a task's page with its log (refreshed with htmx until the task ends) and its actions
(answer an intervention, re-run, cancel), its artifacts; Tasks ➜ Script Console."""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST

from deployments.forms import ScriptConsoleForm
from deployments.models import Artifact, Environment, Project
from deployments.services import deploy
from deployments.services.artifacts import download_name
from deployments.services.interruptions import (
    pending_interruption_of,
    submit_interruption,
    take_interruption_responsibility,
)
from deployments.services.tasks import cancel_server_task, filter_server_tasks
from deployments.views.shortcuts import reason, task_url
from infrastructure.models import WorkerPool
from portal.permissions import Permission
from portal.services.access import has_permission
from portal.views.decorators import space_page
from portal.views.forms import submit
from servertasks.models import ServerTask
from servertasks.services import logstore


@space_page(Permission.TASK_VIEW)
def task_list(request, space):
    """Tasks with Octopus's filters; the table refreshes itself (htmx) while any shown task is unfinished."""
    keys = ("states", "project", "environment", "workerPool", "fromQueuedDate", "toQueuedDate")
    params = {key: request.GET[key] for key in keys if request.GET.get(key)}
    tasks, errors = filter_server_tasks(ServerTask.objects.filter(space=space).select_related("created_by"), params)
    if errors:
        tasks = ServerTask.objects.none()
    page = Paginator(tasks, 50).get_page(request.GET.get("page"))
    context = {
        "space": space,
        "page": page,
        "params": params,
        "errors": errors,
        "states": ServerTask.State.values,
        "projects": Project.objects.filter(space=space),
        "environments": Environment.objects.filter(space=space),
        "pools": WorkerPool.objects.filter(space=space).order_by("sort_order", "name"),
        "querystring": urlencode(params),
        "live": any(not task.is_completed for task in page),
    }
    template = "deployments/_task_rows.html" if request.headers.get("HX-Request") else "deployments/task_list.html"
    return render(request, template, context, status=400 if errors else 200)


LOG_LINES_SHOWN = 20_000  # the page shows a long log's newest lines; the raw download has them all

# Who may re-run what: the permission the re-run's service asks for.
RERUN_PERMISSIONS = {
    "Deploy": Permission.DEPLOYMENT_CREATE,
    "RunbookRun": Permission.RUNBOOK_RUN,
    "AdHocScript": Permission.TASK_CREATE,
}


@space_page(Permission.TASK_VIEW)
def task_detail(request, space, pk: int):
    task = get_object_or_404(ServerTask.objects.select_related("created_by"), pk=pk, space=space)
    steps = task.activity_nodes.filter(parent__isnull=False, parent__parent__isnull=True).prefetch_related("children")
    rerun_permission = RERUN_PERMISSIONS.get(task.name)
    context = {
        "space": space,
        "task": task,
        "steps": steps,
        "artifacts": task.artifacts.defer("content"),
        "interruption": task.interruptions.filter(is_pending=True).select_related("responsible_user").first(),
        "leases": task.leases.select_related("worker") if not task.is_completed else (),
        "may_cancel": has_permission(request.user, Permission.TASK_CANCEL, space=space),
        "may_rerun": task.is_completed
        and rerun_permission is not None
        and has_permission(request.user, rerun_permission, space=space),
    }
    if request.headers.get("HX-Request"):
        return render(request, "deployments/_task_body.html", context)
    last = logstore.last_sequence(task.pk)
    context.update(
        log_limit=LOG_LINES_SHOWN,
        start_after=last - LOG_LINES_SHOWN if last is not None and last >= LOG_LINES_SHOWN else -1,
    )
    return render(request, "deployments/task_detail.html", context)


@space_page(Permission.TASK_VIEW)
def artifact_download(request, space, pk: int, artifact_pk: int):
    artifact = get_object_or_404(Artifact, pk=artifact_pk, task__pk=pk, task__space=space)
    response = HttpResponse(bytes(artifact.content), content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, download_name(artifact.name))
    response["X-Content-Type-Options"] = "nosniff"
    return response


@space_page(Permission.TASK_CREATE)
def script_console(request, space):
    form, status = ScriptConsoleForm(space=space, initial={"syntax": "Bash"}), 200
    if request.method == "POST":
        form = ScriptConsoleForm(request.POST, space=space)
        try:
            task = submit(form, lambda data: deploy.run_adhoc_script(actor=request.user, space=space, **data))
        except PermissionDenied as error:
            form.add_error(None, str(error))
            status = 403
        else:
            if task:
                return redirect(task_url(task))
            status = 400
    return render(request, "deployments/script_console.html", {"space": space, "form": form}, status=status)


@space_page(Permission.TASK_VIEW)
@require_POST
def task_intervention(request, space, pk: int):
    task = get_object_or_404(ServerTask, pk=pk, space=space)
    interruption = pending_interruption_of(task)
    try:
        if interruption is None:
            raise ValidationError("This task is not waiting for an answer.")
        if request.POST.get("assign"):
            take_interruption_responsibility(interruption=interruption, user=request.user)
        else:
            submit_interruption(
                interruption=interruption,
                user=request.user,
                action=request.POST.get("result", ""),
                note=request.POST.get("note", ""),
            )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, reason(error))
    return redirect(task_url(task))


@space_page(Permission.TASK_VIEW)
@require_POST
def task_rerun(request, space, pk: int):
    task = get_object_or_404(ServerTask, pk=pk, space=space)
    try:
        again = deploy.rerun_server_task(actor=request.user, task=task)
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, reason(error))
        return redirect(task_url(task))
    return redirect(task_url(again))


@space_page(Permission.TASK_CANCEL)
@require_POST
def task_cancel(request, space, pk: int):
    task = cancel_server_task(task=get_object_or_404(ServerTask, pk=pk, space=space), actor=request.user)
    messages.info(request, f"{task.description}: {task.state}.")
    return redirect(task_url(task))
