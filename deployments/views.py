"""Tasks: the list and a task's page with its log (refreshed with htmx until the task ends)."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from deployments.models import ServerTask
from portal.permissions import Permission
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
    return render(request, template, {"space": space, "task": task, "lines": task.log_lines.all()})
