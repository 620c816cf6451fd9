"""Runbooks: the list (a POST adds one), a runbook's process and Run, settings, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import DeployForm, NameForm
from deployments.models import Runbook
from deployments.services import catalog, deploy
from deployments.views.releases import queue_for_environment
from deployments.views.shortcuts import get_project_in_space, project_url, steps_url, task_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit


@space_page(P.PROJECT_VIEW)
def runbook_list(request, space, project_pk: int):
    project = get_project_in_space(space, project_pk)
    form, status = NameForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = NameForm(request.POST)
        if runbook := submit(form, lambda data: catalog.create_runbook(actor=request.user, project=project, **data)):
            messages.success(request, f"Runbook {runbook.name} added. Define its process next.")
            return redirect(project_url(project, "runbook", runbook.pk))
        status = 400
    return render(
        request,
        "deployments/runbooks.html",
        {
            "space": space,
            "project": project,
            "section": "runbooks",
            "form": form,
            "may_edit": may(request, P.PROCESS_EDIT),
            "runbooks": project.runbooks.all(),
        },
        status=status,
    )


@space_page(P.PROJECT_VIEW)
def runbook_detail(request, space, project_pk: int, pk: int):
    """The runbook's process (the same editor as the deployment process) and Run against an environment."""
    project = get_project_in_space(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    form, status = DeployForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.RUNBOOK_RUN, space=space)
        form, status, task = queue_for_environment(
            request,
            space,
            lambda environment: deploy.run_runbook(actor=request.user, runbook=runbook, environment=environment).task,
        )
        if task is not None:
            return redirect(task_url(task))
    return render(
        request,
        "deployments/runbook.html",
        {
            "space": space,
            "project": project,
            "section": "runbooks",
            "runbook": runbook,
            "steps": runbook.steps.select_related("worker_pool"),
            "steps_url": steps_url(project, runbook),
            "form": form,
            "runs": runbook.runs.select_related("environment", "task")[:20],
            "may_edit": may(request, P.PROCESS_EDIT),
            "may_run": may(request, P.RUNBOOK_RUN),
        },
        status=status,
    )


@space_page(P.PROJECT_VIEW)
def runbook_settings(request, space, project_pk: int, pk: int):
    project = get_project_in_space(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    may_edit = may(request, P.PROCESS_EDIT)
    form, status = NameForm(initial={"name": runbook.name, "description": runbook.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = NameForm(request.POST)
        if saved := submit(form, lambda data: catalog.update_runbook(actor=request.user, runbook=runbook, **data)):
            messages.success(request, f"Runbook {saved.name} saved.")
            return redirect(project_url(project, "runbook", runbook.pk))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/runbook_settings.html",
        {
            "space": space,
            "project": project,
            "section": "runbooks",
            "runbook": runbook,
            "form": form,
            "may_edit": may_edit,
        },
        status=status,
    )


@space_page(P.PROCESS_EDIT)
@require_POST
def runbook_delete(request, space, project_pk: int, pk: int):
    project = get_project_in_space(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    try:
        catalog.delete_runbook(actor=request.user, runbook=runbook)
    except ValidationError as error:
        refuse(request, error)
        return redirect(project_url(project, "runbook-settings", runbook.pk))
    messages.success(request, f"Runbook {runbook.name} deleted.")
    return redirect(project_url(project, "project-runbooks"))
