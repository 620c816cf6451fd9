"""A project's variables: the list (a POST adds one), edit, delete."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import VariableForm
from deployments.models import Project, Variable
from deployments.services import catalog
from deployments.views.shortcuts import get_project_in_space, project_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, submit


@space_page(P.VARIABLE_VIEW)
def variable_list(request, space, project_pk: int):
    """The variables, and a POST adds one (also at variables/add/)."""
    project = get_project_in_space(space, project_pk)
    form, status = VariableForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.VARIABLE_EDIT, space=space)
        form = VariableForm(request.POST, space=space)
        if _save_variable(request, project, form, None):
            return redirect(project_url(project, "project-variables"))
        status = 400
    return render(
        request,
        "deployments/variables.html",
        {
            "space": space,
            "project": project,
            "section": "variables",
            "form": form,
            "may_edit": may(request, P.VARIABLE_EDIT),
            "variables": project.variables.select_related("worker_pool").prefetch_related("environments"),
        },
        status=status,
    )


@space_page(P.VARIABLE_VIEW)
def variable_edit(request, space, project_pk: int, pk: int):
    project = get_project_in_space(space, project_pk)
    variable = get_object_or_404(Variable, pk=pk, project=project)
    may_edit = may(request, P.VARIABLE_EDIT)
    form, status = VariableForm(space=space, variable=variable, initial=VariableForm.initial_for(variable)), 200
    if request.method == "POST":
        require_permission(request.user, P.VARIABLE_EDIT, space=space)
        form = VariableForm(request.POST, space=space, variable=variable)
        if _save_variable(request, project, form, variable):
            return redirect(project_url(project, "project-variables"))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/variable_edit.html",
        {
            "space": space,
            "project": project,
            "section": "variables",
            "variable": variable,
            "form": form,
            "may_edit": may_edit,
        },
        status=status,
    )


def _save_variable(request, project: Project, form: VariableForm, variable: Variable | None) -> bool:
    saved = submit(
        form, lambda data: catalog.save_variable(actor=request.user, project=project, variable=variable, **data)
    )
    if saved:
        messages.success(request, f"Variable {saved.name} saved.")
    return saved is not None


@space_page(P.VARIABLE_EDIT)
@require_POST
def variable_delete(request, space, project_pk: int, pk: int):
    project = get_project_in_space(space, project_pk)
    variable = get_object_or_404(Variable, pk=pk, project=project)
    catalog.delete_variable(actor=request.user, variable=variable)
    messages.success(request, f"Variable {variable.name} deleted.")
    return redirect(project_url(project, "project-variables"))
