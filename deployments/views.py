"""Tasks: the list and a task's page with its log (refreshed with htmx until the task ends)."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from deployments.models import ServerTask
from portal.permissions import Permission
from portal.services.access import has_permission
from portal.views.decorators import space_page


@space_page(Permission.TASK_VIEW)
def task_list(request, space):
    tasks = ServerTask.objects.filter(space=space).select_related("created_by")
    state = request.GET.get("state", "")
    if state in ServerTask.State.values:
        tasks = tasks.filter(state=state)
    page = Paginator(tasks, 50).get_page(request.GET.get("page"))
    return render(request, "deployments/task_list.html",
                  {"space": space, "page": page, "state": state, "states": ServerTask.State.values,
                   "querystring": f"state={state}" if state else ""})


@space_page(Permission.TASK_VIEW)
def task_detail(request, space, pk: int):
    task = get_object_or_404(ServerTask.objects.select_related("created_by"), pk=pk, space=space)
    template = "deployments/_task_body.html" if request.headers.get("HX-Request") else "deployments/task_detail.html"
    steps = task.activity_nodes.filter(parent__isnull=False, parent__parent__isnull=True).prefetch_related("children")
    return render(request, template, {
        "space": space, "task": task, "steps": steps, "artifacts": task.artifacts.defer("content"),
        "may_cancel": has_permission(request.user, Permission.TASK_CANCEL, space=space),
        "may_rerun": task.is_completed and task.name in ("Deploy", "RunbookRun", "AdHocScript")})


@space_page(Permission.TASK_VIEW)
def artifact_download(request, space, pk: int, artifact_pk: int):
    from django.http import HttpResponse

    from deployments.models import Artifact

    artifact = get_object_or_404(Artifact, pk=artifact_pk, task__pk=pk, task__space=space)
    response = HttpResponse(bytes(artifact.content), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{artifact.name.replace(chr(34), "")}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
