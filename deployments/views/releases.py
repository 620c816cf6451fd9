"""Releases: create one, its page (the snapshot it deploys), and Deploy to a chosen environment."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render

from deployments.forms import DeployForm, ReleaseForm
from deployments.models import Environment, Release
from deployments.services import deploy, lifecycles
from deployments.services.snapshots import pool_pk
from deployments.views.shortcuts import get_project_in_space, project_url, reason, task_url
from infrastructure.models import WorkerPool
from portal.permissions import Permission as P
from portal.views.decorators import may, space_page
from portal.views.forms import submit


@space_page(P.RELEASE_CREATE)
def release_create(request, space, project_pk: int):
    project = get_project_in_space(space, project_pk)
    form, status = ReleaseForm(initial={"version": deploy.next_release_version(project)}), 200
    if request.method == "POST":
        form = ReleaseForm(request.POST)
        if release := submit(form, lambda data: deploy.create_release(actor=request.user, project=project, **data)):
            messages.success(request, f"Release {release.version} created.")
            return redirect(project_url(project, "release", release.pk))
        status = 400
    return render(
        request,
        "deployments/release_create.html",
        {
            "space": space,
            "project": project,
            "section": "overview",
            "form": form,
            "step_count": project.steps.filter(runbook__isnull=True).count(),
        },
        status=status,
    )


@space_page(P.RELEASE_VIEW)
def release_detail(request, space, project_pk: int, pk: int):
    project = get_project_in_space(space, project_pk)
    release = get_object_or_404(Release.objects.select_related("created_by"), pk=pk, project=project)
    return render(
        request,
        "deployments/release.html",
        {
            "space": space,
            "project": project,
            "section": "overview",
            "release": release,
            "steps": _with_pool_names(space, release.process_snapshot),
            "variables": release.variables_snapshot,
            "deployments": release.deployments.select_related("environment", "task", "created_by"),
            "may_deploy": may(request, P.DEPLOYMENT_CREATE),
        },
    )


def _with_pool_names(space, steps: list[dict]) -> list[dict]:
    """Snapshot steps name their pool by id; the page shows its name (or that it has since been deleted)."""
    names = dict(
        WorkerPool.objects.filter(
            space=space, pk__in=[pool_pk(s.get("WorkerPoolId")) for s in steps if s.get("WorkerPoolId")]
        ).values_list("pk", "name")
    )
    return [
        {
            **step,
            "PoolName": names.get(pool_pk(step.get("WorkerPoolId")), "a deleted pool")
            if step.get("WorkerPoolId")
            else "",
        }
        for step in steps
    ]


def queue_for_environment(request, space, queue):
    """Deploy or Run from a chosen environment: (form, status, the queued task or None). A refused pool
    is a 403 whose message names it; bad input is a 400 with the form's errors."""
    form = DeployForm(request.POST, space=space)
    try:
        task = submit(form, lambda data: queue(data["environment"]))
    except PermissionDenied as error:
        messages.error(request, reason(error))
        return form, 403, None
    return form, 200 if task else 400, task


@space_page(P.DEPLOYMENT_CREATE)
def release_deploy(request, space, project_pk: int, pk: int):
    """Choose the environment and Deploy: the task's page follows."""
    project = get_project_in_space(space, project_pk)
    release = get_object_or_404(Release, pk=pk, project=project)
    form, status = DeployForm(space=space, initial={"environment": request.GET.get("environment")}), 200
    if request.method == "POST":
        form, status, task = queue_for_environment(
            request,
            space,
            lambda environment: (
                deploy.deploy_release(
                    actor=request.user,
                    release=release,
                    environment=environment,
                    use_guided_failure=bool(request.POST.get("use_guided_failure")),
                ).task
            ),
        )
        if task is not None:
            return redirect(task_url(task))
    lifecycle, phases = lifecycles.lifecycle_progress(release)
    return render(
        request,
        "deployments/deploy.html",
        {
            "space": space,
            "project": project,
            "section": "overview",
            "release": release,
            "form": form,
            "has_environments": Environment.objects.filter(space=space).exists(),
            "lifecycle": lifecycle,
            "phases": phases,
        },
        status=status,
    )
