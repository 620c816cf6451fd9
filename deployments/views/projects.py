"""Projects: the list (and adding one), the overview, settings, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import NameForm
from deployments.models import Deployment, Environment, Project
from deployments.services import catalog
from deployments.views.shortcuts import get_project_in_space, project_url, space_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit


@space_page(P.PROJECT_VIEW)
def project_list(request, space):
    form, status = NameForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.PROJECT_EDIT, space=space)
        form = NameForm(request.POST)
        if project := submit(form, lambda data: catalog.create_project(actor=request.user, space=space, **data)):
            messages.success(request, f"Project {project.name} added. Define its deployment process next.")
            return redirect(project_url(project, "project-process"))
        status = 400
    return render(
        request,
        "deployments/projects.html",
        {
            "space": space,
            "projects": Project.objects.filter(space=space),
            "form": form,
            "may_edit": may(request, P.PROJECT_EDIT),
        },
        status=status,
    )


@space_page(P.PROJECT_VIEW)
def project_detail(request, space, pk: int):
    """The overview: each environment with the latest deployment to it, and the latest releases."""
    project = get_project_in_space(space, pk)
    environments = list(Environment.objects.filter(space=space))
    latest: dict[int, Deployment] = {}
    for deployment in (
        Deployment.objects.filter(release__project=project)
        .select_related("release", "task")
        .order_by("-created", "-id")
    ):
        latest.setdefault(deployment.environment_id, deployment)
        if len(latest) == len(environments):
            break
    return render(
        request,
        "deployments/project.html",
        {
            "space": space,
            "project": project,
            "section": "overview",
            "dashboard": [(environment, latest.get(environment.pk)) for environment in environments],
            "releases": project.releases.prefetch_related(
                Prefetch("deployments", Deployment.objects.select_related("environment", "task"))
            )[:10],
            "step_count": project.steps.filter(runbook__isnull=True).count(),
            "may_release": may(request, P.RELEASE_CREATE),
            "may_deploy": may(request, P.DEPLOYMENT_CREATE),
        },
    )


@space_page(P.PROJECT_VIEW)
def project_settings(request, space, pk: int):
    project = get_project_in_space(space, pk)
    may_edit = may(request, P.PROJECT_EDIT)
    form, status = NameForm(initial={"name": project.name, "description": project.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROJECT_EDIT, space=space)
        form = NameForm(request.POST)
        if saved := submit(form, lambda data: catalog.update_project(actor=request.user, project=project, **data)):
            messages.success(request, f"Project {saved.name} saved.")
            return redirect(project_url(saved))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/project_settings.html",
        {"space": space, "project": project, "section": "settings", "form": form, "may_edit": may_edit},
        status=status,
    )


@space_page(P.PROJECT_EDIT)
@require_POST
def project_delete(request, space, pk: int):
    project = get_project_in_space(space, pk)
    try:
        catalog.delete_project(actor=request.user, project=project)
    except ValidationError as error:
        refuse(request, error)
        return redirect(project_url(project, "project-settings"))
    messages.success(request, f"Project {project.name} deleted.")
    return redirect(space_url(space, "projects"))
