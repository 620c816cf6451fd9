"""The process editor: a project's deployment process, or a runbook's (runbook_pk)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import StepForm
from deployments.models import Project, Runbook, Step, Variable
from deployments.services import catalog
from deployments.views.shortcuts import get_project_in_space, project_url, steps_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit


def _process_owner(space, project_pk: int, runbook_pk: int | None) -> tuple[Project, Runbook | None, str]:
    project = get_project_in_space(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=runbook_pk, project=project) if runbook_pk else None
    back = project_url(project, "runbook", runbook.pk) if runbook else project_url(project, "project-process")
    return project, runbook, back


@space_page(P.PROCESS_VIEW)
def process(request, space, project_pk: int):
    project = get_project_in_space(space, project_pk)
    return render(
        request,
        "deployments/process.html",
        {
            "space": space,
            "project": project,
            "section": "process",
            "runbook": None,
            "steps": project.steps.filter(runbook__isnull=True).select_related("worker_pool"),
            "steps_url": steps_url(project, None),
            "may_edit": may(request, P.PROCESS_EDIT),
        },
    )


@space_page(P.PROCESS_VIEW)
def step_edit(request, space, project_pk: int, pk: int | None = None, runbook_pk: int | None = None):
    """Add (no pk) or edit a step of the deployment process, or (runbook_pk) of a runbook's process."""
    project, runbook, back = _process_owner(space, project_pk, runbook_pk)
    step = get_object_or_404(Step, pk=pk, project=project, runbook=runbook) if pk else None
    if step is None:
        require_permission(request.user, P.PROCESS_EDIT, space=space)
    may_edit = may(request, P.PROCESS_EDIT)
    form, status = StepForm(space=space, initial=StepForm.initial_for(step) if step else {}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = StepForm(request.POST, space=space)
        saved = submit(
            form,
            lambda _: catalog.save_step(
                actor=request.user, project=project, step=step, runbook=runbook, **form.service_values()
            ),
        )
        if saved:
            messages.success(request, f"Step {saved.name} saved.")
            return redirect(back)
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/step_edit.html",
        {
            "space": space,
            "project": project,
            "section": "runbooks" if runbook else "process",
            "step": step,
            "form": form,
            "runbook": runbook,
            "back": back,
            "may_edit": may_edit,
            "pool_variables": project.variables.filter(type=Variable.Type.WORKER_POOL)
            .values_list("name", flat=True)
            .distinct(),
        },
        status=status,
    )


@space_page(P.PROCESS_EDIT)
@require_POST
def step_delete(request, space, project_pk: int, pk: int, runbook_pk: int | None = None):
    project, runbook, back = _process_owner(space, project_pk, runbook_pk)
    step = get_object_or_404(Step, pk=pk, project=project, runbook=runbook)
    catalog.delete_step(actor=request.user, step=step)
    messages.success(request, f"Step {step.name} deleted.")
    return redirect(back)


@space_page(P.PROCESS_EDIT)
@require_POST
def step_move(request, space, project_pk: int, pk: int, direction: str, runbook_pk: int | None = None):
    if direction not in ("up", "down"):
        raise Http404("Steps move up or down.")
    project, runbook, back = _process_owner(space, project_pk, runbook_pk)
    step = get_object_or_404(Step, pk=pk, project=project, runbook=runbook)
    ordered = list(Step.objects.filter(project=project, runbook=runbook).values_list("pk", flat=True))
    try:
        catalog.reorder_steps(
            actor=request.user, project=project, runbook=runbook, ordered_ids=catalog.moved(ordered, step.pk, direction)
        )
    except ValidationError as error:
        refuse(request, error)
    return redirect(back)
