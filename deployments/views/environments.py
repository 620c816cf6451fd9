"""Infrastructure ➜ Environments and Deployment Targets, beside Worker Pools.

EnvironmentEdit for writes, then one service call (see the package's docstring)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import DeploymentTargetForm, NameForm
from deployments.models import DeploymentTarget, Environment
from deployments.services import catalog
from deployments.services.interruptions import set_environment_guided_failure
from deployments.views.shortcuts import space_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit

# Environments ---------------------------------------------------------------------------------------


@space_page(P.ENVIRONMENT_VIEW)
def environment_list(request, space):
    form, status = NameForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.ENVIRONMENT_EDIT, space=space)
        form = NameForm(request.POST)
        if environment := submit(
            form, lambda data: catalog.create_environment(actor=request.user, space=space, **data)
        ):
            messages.success(request, f"Environment {environment.name} added.")
            return redirect(space_url(space, "environments"))
        status = 400
    environments = Environment.objects.filter(space=space).annotate(target_count=Count("deployment_targets"))
    return render(
        request,
        "deployments/environments.html",
        {"space": space, "environments": environments, "form": form, "may_edit": may(request, P.ENVIRONMENT_EDIT)},
        status=status,
    )


@space_page(P.ENVIRONMENT_VIEW)
def environment_edit(request, space, pk: int):
    environment = get_object_or_404(Environment, pk=pk, space=space)
    may_edit = may(request, P.ENVIRONMENT_EDIT)
    form, status = NameForm(initial={"name": environment.name, "description": environment.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.ENVIRONMENT_EDIT, space=space)
        form = NameForm(request.POST)

        def save(data):
            saved = catalog.update_environment(actor=request.user, environment=environment, **data)
            set_environment_guided_failure(
                actor=request.user, environment=environment, enabled=bool(request.POST.get("use_guided_failure"))
            )
            return saved

        if saved := submit(form, save):
            messages.success(request, f"Environment {saved.name} saved.")
            return redirect(space_url(space, "environments"))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/environment_edit.html",
        {
            "space": space,
            "environment": environment,
            "form": form,
            "may_edit": may_edit,
            "targets": environment.deployment_targets.all(),
        },
        status=status,
    )


@space_page(P.ENVIRONMENT_EDIT)
@require_POST
def environment_delete(request, space, pk: int):
    environment = get_object_or_404(Environment, pk=pk, space=space)
    try:
        catalog.delete_environment(actor=request.user, environment=environment)
    except ValidationError as error:
        refuse(request, error)
        return redirect(space_url(space, "environment", environment.pk))
    messages.success(request, f"Environment {environment.name} deleted.")
    return redirect(space_url(space, "environments"))


@space_page(P.ENVIRONMENT_EDIT)
@require_POST
def environment_move(request, space, pk: int, direction: str):
    if direction not in ("up", "down"):
        raise Http404("Environments move up or down.")
    environment = get_object_or_404(Environment, pk=pk, space=space)
    ordered = list(Environment.objects.filter(space=space).values_list("pk", flat=True))
    try:
        catalog.reorder_environments(
            actor=request.user, space=space, ordered_ids=catalog.moved(ordered, environment.pk, direction)
        )
    except ValidationError as error:  # one was added or deleted meanwhile
        refuse(request, error)
    return redirect(space_url(space, "environments"))


# Deployment targets ---------------------------------------------------------------------------------


@space_page(P.ENVIRONMENT_VIEW)
def target_list(request, space):
    form, status = DeploymentTargetForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.ENVIRONMENT_EDIT, space=space)
        form = DeploymentTargetForm(request.POST, space=space)
        if _save_target(request, space, form, None):
            return redirect(space_url(space, "deployment-targets"))
        status = 400
    return render(
        request,
        "deployments/targets.html",
        {
            "space": space,
            "targets": DeploymentTarget.objects.filter(space=space).prefetch_related("environments"),
            "form": form,
            "has_environments": Environment.objects.filter(space=space).exists(),
            "may_edit": may(request, P.ENVIRONMENT_EDIT),
        },
        status=status,
    )


@space_page(P.ENVIRONMENT_VIEW)
def target_edit(request, space, pk: int):
    target = get_object_or_404(DeploymentTarget, pk=pk, space=space)
    may_edit = may(request, P.ENVIRONMENT_EDIT)
    form, status = DeploymentTargetForm(space=space, initial=DeploymentTargetForm.initial_for(target)), 200
    if request.method == "POST":
        require_permission(request.user, P.ENVIRONMENT_EDIT, space=space)
        form = DeploymentTargetForm(request.POST, space=space)
        if _save_target(request, space, form, target):
            return redirect(space_url(space, "deployment-targets"))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "deployments/target_edit.html",
        {"space": space, "target": target, "form": form, "may_edit": may_edit},
        status=status,
    )


def _save_target(request, space, form: DeploymentTargetForm, target: DeploymentTarget | None) -> bool:
    def save(_):
        if target is None:
            return catalog.create_deployment_target(actor=request.user, space=space, **form.service_values())
        return catalog.update_deployment_target(actor=request.user, target=target, **form.service_values())

    if saved := submit(form, save):
        messages.success(request, f"Deployment target {saved.name} saved.")
    return saved is not None


@space_page(P.ENVIRONMENT_EDIT)
@require_POST
def target_delete(request, space, pk: int):
    target = get_object_or_404(DeploymentTarget, pk=pk, space=space)
    catalog.delete_deployment_target(actor=request.user, target=target)
    messages.success(request, f"Deployment target {target.name} deleted.")
    return redirect(space_url(space, "deployment-targets"))
