"""Projects, their process (the step editor), variables, releases and deployments; environments; the
Script Console; Configuration ➜ Features. Views call services; refusals come back as messages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from deployments.forms import (
    DeploymentTargetForm, DeployForm, NameForm, PackageForm, ReleaseForm, ScriptConsoleForm, StepForm, VariableForm)
from deployments.models import (
    DeploymentTarget, Environment, Package, Project, Release, Runbook, ServerConfiguration, ServerTask, Step, Variable)
from deployments.services import catalog, deploy
from portal.permissions import Permission as P
from portal.services.access import has_permission, require_permission
from portal.views.decorators import space_page
from portal.views.pages import _add_errors


def _reason(error: ValidationError | PermissionDenied) -> str:
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def _task_url(task: ServerTask) -> str:
    return reverse("task", args=[task.space.octopus_id, task.pk])


def _project_url(project: Project) -> str:
    return reverse("project", args=[project.space.octopus_id, project.pk])


@space_page(P.PROJECT_VIEW)
def project_list(request, space):
    form, status = NameForm(), 200
    if request.method == "POST":
        form = NameForm(request.POST)
        if form.is_valid():
            try:
                project = catalog.create_project(actor=request.user, space=space, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                return redirect(_project_url(project))
        status = 400
    return render(request, "deployments/projects.html", {
        "space": space, "projects": Project.objects.filter(space=space), "form": form,
        "may_edit": has_permission(request.user, P.PROJECT_EDIT, space=space)}, status=status)


@space_page(P.PROJECT_VIEW)
def project_detail(request, space, pk: int):
    project = get_object_or_404(Project, pk=pk, space=space)
    return render(request, "deployments/project.html", {
        "space": space, "project": project,
        "steps": project.steps.filter(runbook__isnull=True).select_related("worker_pool"),
        "variables": project.variables.select_related("worker_pool").prefetch_related("environments"),
        "releases": project.releases.prefetch_related("deployments__environment", "deployments__task")[:20],
        "runbooks": project.runbooks.all(), "runbook_form": NameForm(),
        "variable_form": VariableForm(space=space), "release_form": ReleaseForm(), "deploy_form": DeployForm(space=space),
        "may": {name: has_permission(request.user, permission, space=space) for name, permission in {
            "process": P.PROCESS_EDIT, "variables": P.VARIABLE_EDIT, "release": P.RELEASE_CREATE,
            "deploy": P.DEPLOYMENT_CREATE, "run": P.RUNBOOK_RUN}.items()}})


@space_page(P.PROCESS_VIEW)
def step_edit(request, space, project_pk: int, pk: int | None = None, runbook_pk: int | None = None):
    """A step of the deployment process, or (runbook_pk) of a runbook's process."""
    project = get_object_or_404(Project, pk=project_pk, space=space)
    runbook = get_object_or_404(Runbook, pk=runbook_pk, project=project) if runbook_pk else None
    step = get_object_or_404(Step, pk=pk, project=project, runbook=runbook) if pk else None
    back = reverse("runbook", args=[space.octopus_id, project.pk, runbook.pk]) if runbook else _project_url(project)
    form, status = StepForm(space=space, initial=StepForm.initial_for(step) if step else {}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = StepForm(request.POST, space=space)
        if form.is_valid():
            try:
                values = form.service_values()
                packages = values.pop("packages")
                step = catalog.save_step(actor=request.user, project=project, step=step, runbook=runbook, **values)
                step.packages = packages
                step.save(update_fields=["packages"])
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Step {step.name} saved.")
                return redirect(back)
        status = 400
    return render(request, "deployments/step_edit.html", {"space": space, "project": project, "step": step, "form": form,
                                                          "runbook": runbook, "back": back,
                                                          "may_edit": has_permission(request.user, P.PROCESS_EDIT, space=space)},
                  status=status)


@space_page(P.PROCESS_EDIT)
@require_POST
def step_delete(request, space, project_pk: int, pk: int):
    step = get_object_or_404(Step, pk=pk, project__pk=project_pk, project__space=space)
    catalog.delete_step(actor=request.user, step=step)
    messages.success(request, f"Step {step.name} deleted.")
    if step.runbook_id:
        return redirect(reverse("runbook", args=[space.octopus_id, project_pk, step.runbook_id]))
    return redirect(_project_url(step.project))


@space_page(P.VARIABLE_EDIT)
@require_POST
def variable_add(request, space, project_pk: int):
    project = get_object_or_404(Project, pk=project_pk, space=space)
    form = VariableForm(request.POST, space=space)
    if form.is_valid():
        try:
            variable = catalog.save_variable(actor=request.user, project=project, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Variable {variable.name} saved.")
    else:
        messages.error(request, "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
    return redirect(_project_url(project) + "#variables")


@space_page(P.VARIABLE_EDIT)
@require_POST
def variable_delete(request, space, project_pk: int, pk: int):
    variable = get_object_or_404(Variable, pk=pk, project__pk=project_pk, project__space=space)
    catalog.delete_variable(actor=request.user, variable=variable)
    return redirect(_project_url(variable.project) + "#variables")


@space_page(P.RELEASE_CREATE)
@require_POST
def release_create(request, space, project_pk: int):
    project = get_object_or_404(Project, pk=project_pk, space=space)
    form = ReleaseForm(request.POST)
    if form.is_valid():
        try:
            release = deploy.create_release(actor=request.user, project=project, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Release {release.version} created.")
    return redirect(_project_url(project) + "#releases")


@space_page(P.DEPLOYMENT_CREATE)
@require_POST
def release_deploy(request, space, project_pk: int, pk: int):
    release = get_object_or_404(Release, pk=pk, project__pk=project_pk, project__space=space)
    form = DeployForm(request.POST, space=space)
    if not form.is_valid():
        messages.error(request, "Choose an environment to deploy to.")
        return redirect(_project_url(release.project))
    try:
        deployment = deploy.deploy_release(actor=request.user, release=release, environment=form.cleaned_data["environment"])
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, _reason(error))
        return redirect(_project_url(release.project))
    return redirect(_task_url(deployment.task))


@space_page(P.ENVIRONMENT_VIEW)
def environment_list(request, space):
    """Environments and the deployment targets in them; a POST adds one or the other."""
    form, target_form, status = NameForm(), DeploymentTargetForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.ENVIRONMENT_EDIT, space=space)
        adding_target = request.POST.get("add") == "target"
        bound = DeploymentTargetForm(request.POST, space=space) if adding_target else NameForm(request.POST)
        if bound.is_valid():
            try:
                if adding_target:
                    catalog.create_deployment_target(actor=request.user, space=space, **bound.service_values())
                else:
                    catalog.create_environment(actor=request.user, space=space, **bound.cleaned_data)
            except ValidationError as error:
                _add_errors(bound, error)
            else:
                return redirect(reverse("environments", args=[space.octopus_id]))
        form, target_form = (form, bound) if adding_target else (bound, target_form)
        status = 400
    return render(request, "deployments/environments.html", {
        "space": space, "environments": Environment.objects.filter(space=space), "form": form, "target_form": target_form,
        "targets": DeploymentTarget.objects.filter(space=space).prefetch_related("environments"),
        "may_edit": has_permission(request.user, P.ENVIRONMENT_EDIT, space=space)}, status=status)


@space_page(P.PROCESS_EDIT)
@require_POST
def runbook_add(request, space, project_pk: int):
    project = get_object_or_404(Project, pk=project_pk, space=space)
    form = NameForm(request.POST)
    if form.is_valid():
        try:
            runbook = catalog.create_runbook(actor=request.user, project=project, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            return redirect(reverse("runbook", args=[space.octopus_id, project.pk, runbook.pk]))
    return redirect(_project_url(project) + "#runbooks")


@space_page(P.PROJECT_VIEW)
def runbook_detail(request, space, project_pk: int, pk: int):
    runbook = get_object_or_404(Runbook.objects.select_related("project"), pk=pk, project__pk=project_pk, project__space=space)
    if request.method == "POST":
        require_permission(request.user, P.RUNBOOK_RUN, space=space)
        form = DeployForm(request.POST, space=space)
        if form.is_valid():
            try:
                run = deploy.run_runbook(actor=request.user, runbook=runbook, environment=form.cleaned_data["environment"])
            except (ValidationError, PermissionDenied) as error:
                messages.error(request, _reason(error))
            else:
                return redirect(_task_url(run.task))
    return render(request, "deployments/runbook.html", {
        "space": space, "project": runbook.project, "runbook": runbook, "steps": runbook.steps.select_related("worker_pool"),
        "deploy_form": DeployForm(space=space), "runs": runbook.runs.select_related("environment", "task")[:20],
        "may_edit": has_permission(request.user, P.PROCESS_EDIT, space=space),
        "may_run": has_permission(request.user, P.RUNBOOK_RUN, space=space)})


@space_page(P.FEED_VIEW)
def package_list(request, space):
    form, status = PackageForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.BUILT_IN_FEED_PUSH, space=space)
        form = PackageForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                package = catalog.store_package(actor=request.user, space=space, package_id=form.cleaned_data["package_id"],
                                                version=form.cleaned_data["version"], upload=form.cleaned_data["file"])
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Package {package} pushed to the built-in feed.")
                return redirect(reverse("packages", args=[space.octopus_id]))
        status = 400
    return render(request, "deployments/packages.html", {
        "space": space, "packages": Package.objects.filter(space=space), "form": form,
        "may_push": has_permission(request.user, P.BUILT_IN_FEED_PUSH, space=space)}, status=status)


@space_page(P.TASK_CREATE)
def script_console(request, space):
    form, status = ScriptConsoleForm(space=space, initial={"syntax": "Bash"}), 200
    if request.method == "POST":
        form = ScriptConsoleForm(request.POST, space=space)
        if form.is_valid():
            try:
                task = deploy.run_adhoc_script(actor=request.user, space=space, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            except PermissionDenied as error:
                form.add_error(None, str(error))
            else:
                return redirect(_task_url(task))
        status = 400
    return render(request, "deployments/script_console.html", {"space": space, "form": form}, status=status)


@space_page(P.TASK_VIEW)
@require_POST
def task_intervention(request, space, pk: int):
    task = get_object_or_404(ServerTask, pk=pk, space=space)
    try:
        deploy.proceed_after_intervention(actor=request.user, task=task, proceed=request.POST.get("result") == "Proceed",
                                          note=request.POST.get("note", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect(_task_url(task))


@space_page(P.TASK_VIEW)
@require_POST
def task_rerun(request, space, pk: int):
    task = get_object_or_404(ServerTask, pk=pk, space=space)
    try:
        again = deploy.rerun_server_task(actor=request.user, task=task)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(_task_url(task))
    return redirect(_task_url(again))


@login_required
def features(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    if request.method == "POST":
        catalog.set_builtin_worker_enabled(actor=request.user, enabled=request.POST.get("builtin_worker") == "on")
        messages.success(request, "Features saved.")
        return redirect("configuration-features")
    return render(request, "deployments/features.html", {"configuration": ServerConfiguration.current()})


@space_page(P.TASK_CANCEL)
@require_POST
def task_cancel(request, space, pk: int):
    from deployments.services.tasks import cancel_server_task

    task = cancel_server_task(task=get_object_or_404(ServerTask, pk=pk, space=space), actor=request.user)
    messages.info(request, f"{task.description}: {task.state}.")
    return redirect(_task_url(task))
