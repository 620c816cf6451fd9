"""Projects: the overview, the process editor (shared with runbooks), variables, releases and deploying,
runbooks; Library ➜ Packages; Tasks ➜ Script Console and a task's actions; Configuration ➜ Features.

Thin views (STYLE 6): `space_page` gives the space (404 if not visible, 403 without the view permission),
objects are looked up within it (404 otherwise), writes check their permission, then call one service. A
ValidationError becomes a form error (400) or a refusal message; a PermissionDenied from the deploy
services (a pool the user's teams may not use) becomes a message naming the pool."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from deployments.forms import DeployForm, NameForm, PackageForm, ReleaseForm, ScriptConsoleForm, StepForm, VariableForm
from deployments.models import (
    Deployment, Environment, Package, Project, Release, Runbook, ServerConfiguration, Step, Variable,
)
from deployments.services import catalog, deploy, lifecycles
from infrastructure.models import WorkerPool
from infrastructure.views.shortcuts import may, refuse
from portal.permissions import Permission as P
from portal.services.access import has_permission, require_permission
from portal.views.decorators import space_page
from portal.views.pages import _add_errors
from servertasks.models import ServerTask


def _reason(error: ValidationError | PermissionDenied) -> str:
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def _task_url(task: ServerTask) -> str:
    return reverse("task", args=[task.space.octopus_id, task.pk])


def _url(project: Project, name: str = "project", *args) -> str:
    return reverse(name, args=[project.space.octopus_id, project.pk, *args])


def _project(space, pk: int) -> Project:
    return get_object_or_404(Project, pk=pk, space=space)


def _read_only(form) -> None:
    for field in form.fields.values():
        field.disabled = True


# Projects -------------------------------------------------------------------------------------------

@space_page(P.PROJECT_VIEW)
def project_list(request, space):
    form, status = NameForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.PROJECT_EDIT, space=space)
        form = NameForm(request.POST)
        if form.is_valid():
            try:
                project = catalog.create_project(actor=request.user, space=space, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Project {project.name} added. Define its deployment process next.")
                return redirect(_url(project, "project-process"))
        status = 400
    return render(request, "deployments/projects.html", {
        "space": space, "projects": Project.objects.filter(space=space), "form": form,
        "may_edit": may(request, P.PROJECT_EDIT)}, status=status)


@space_page(P.PROJECT_VIEW)
def project_detail(request, space, pk: int):
    """The overview: each environment with the latest deployment to it, and the latest releases."""
    project = _project(space, pk)
    environments = list(Environment.objects.filter(space=space))
    latest: dict[int, Deployment] = {}
    for deployment in Deployment.objects.filter(release__project=project).select_related("release", "task").order_by("-created", "-id"):
        latest.setdefault(deployment.environment_id, deployment)
        if len(latest) == len(environments):
            break
    return render(request, "deployments/project.html", {
        "space": space, "project": project, "section": "overview",
        "dashboard": [(environment, latest.get(environment.pk)) for environment in environments],
        "releases": project.releases.prefetch_related(Prefetch("deployments", Deployment.objects.select_related("environment", "task")))[:10],
        "step_count": project.steps.filter(runbook__isnull=True).count(),
        "may_release": may(request, P.RELEASE_CREATE), "may_deploy": may(request, P.DEPLOYMENT_CREATE)})


@space_page(P.PROJECT_VIEW)
def project_settings(request, space, pk: int):
    project = _project(space, pk)
    may_edit = may(request, P.PROJECT_EDIT)
    form, status = NameForm(initial={"name": project.name, "description": project.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROJECT_EDIT, space=space)
        form = NameForm(request.POST)
        if form.is_valid():
            try:
                project = catalog.update_project(actor=request.user, project=project, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Project {project.name} saved.")
                return redirect(_url(project))
        status = 400
    if not may_edit:
        _read_only(form)
    return render(request, "deployments/project_settings.html", {
        "space": space, "project": project, "section": "settings", "form": form, "may_edit": may_edit}, status=status)


@space_page(P.PROJECT_EDIT)
@require_POST
def project_delete(request, space, pk: int):
    project = _project(space, pk)
    try:
        catalog.delete_project(actor=request.user, project=project)
    except ValidationError as error:
        refuse(request, error)
        return redirect(_url(project, "project-settings"))
    messages.success(request, f"Project {project.name} deleted.")
    return redirect(reverse("projects", args=[space.octopus_id]))


# The process editor: a project's deployment process, or a runbook's ---------------------------------

def _process_owner(space, project_pk: int, runbook_pk: int | None) -> tuple[Project, Runbook | None, str]:
    project = _project(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=runbook_pk, project=project) if runbook_pk else None
    back = _url(project, "runbook", runbook.pk) if runbook else _url(project, "project-process")
    return project, runbook, back


def _step_urls(project: Project, runbook: Runbook | None) -> str:
    """The prefix under which this process's steps live: `{{ steps_url }}{{ step.pk }}/`."""
    return _url(project, "runbook", runbook.pk) + "steps/" if runbook else _url(project) + "steps/"


@space_page(P.PROCESS_VIEW)
def process(request, space, project_pk: int):
    project = _project(space, project_pk)
    return render(request, "deployments/process.html", {
        "space": space, "project": project, "section": "process", "runbook": None,
        "steps": project.steps.filter(runbook__isnull=True).select_related("worker_pool"),
        "steps_url": _step_urls(project, None), "may_edit": may(request, P.PROCESS_EDIT)})


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
        if form.is_valid():
            try:
                step = catalog.save_step(actor=request.user, project=project, step=step, runbook=runbook, **form.service_values())
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Step {step.name} saved.")
                return redirect(back)
        status = 400
    if not may_edit:
        _read_only(form)
    return render(request, "deployments/step_edit.html", {
        "space": space, "project": project, "section": "runbooks" if runbook else "process", "step": step, "form": form,
        "runbook": runbook, "back": back, "may_edit": may_edit,
        "pool_variables": project.variables.filter(type=Variable.Type.WORKER_POOL).values_list("name", flat=True).distinct()},
        status=status)


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
        catalog.reorder_steps(actor=request.user, project=project, runbook=runbook,
                              ordered_ids=catalog.moved(ordered, step.pk, direction))
    except ValidationError as error:
        refuse(request, error)
    return redirect(back)


# Variables ------------------------------------------------------------------------------------------

@space_page(P.VARIABLE_VIEW)
def variable_list(request, space, project_pk: int):
    """The variables, and a POST adds one (also at variables/add/)."""
    project = _project(space, project_pk)
    form, status = VariableForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.VARIABLE_EDIT, space=space)
        form = VariableForm(request.POST, space=space)
        if _save_variable(request, project, form, None):
            return redirect(_url(project, "project-variables"))
        status = 400
    return render(request, "deployments/variables.html", {
        "space": space, "project": project, "section": "variables", "form": form, "may_edit": may(request, P.VARIABLE_EDIT),
        "variables": project.variables.select_related("worker_pool").prefetch_related("environments")}, status=status)


@space_page(P.VARIABLE_VIEW)
def variable_edit(request, space, project_pk: int, pk: int):
    project = _project(space, project_pk)
    variable = get_object_or_404(Variable, pk=pk, project=project)
    may_edit = may(request, P.VARIABLE_EDIT)
    form, status = VariableForm(space=space, variable=variable, initial=VariableForm.initial_for(variable)), 200
    if request.method == "POST":
        require_permission(request.user, P.VARIABLE_EDIT, space=space)
        form = VariableForm(request.POST, space=space, variable=variable)
        if _save_variable(request, project, form, variable):
            return redirect(_url(project, "project-variables"))
        status = 400
    if not may_edit:
        _read_only(form)
    return render(request, "deployments/variable_edit.html", {
        "space": space, "project": project, "section": "variables", "variable": variable, "form": form, "may_edit": may_edit},
        status=status)


def _save_variable(request, project: Project, form: VariableForm, variable: Variable | None) -> bool:
    if not form.is_valid():
        return False
    try:
        saved = catalog.save_variable(actor=request.user, project=project, variable=variable, **form.cleaned_data)
    except ValidationError as error:
        _add_errors(form, error)
        return False
    messages.success(request, f"Variable {saved.name} saved.")
    return True


@space_page(P.VARIABLE_EDIT)
@require_POST
def variable_delete(request, space, project_pk: int, pk: int):
    project = _project(space, project_pk)
    variable = get_object_or_404(Variable, pk=pk, project=project)
    catalog.delete_variable(actor=request.user, variable=variable)
    messages.success(request, f"Variable {variable.name} deleted.")
    return redirect(_url(project, "project-variables"))


# Releases and deploying -----------------------------------------------------------------------------

@space_page(P.RELEASE_CREATE)
def release_create(request, space, project_pk: int):
    project = _project(space, project_pk)
    form, status = ReleaseForm(initial={"version": deploy.next_release_version(project)}), 200
    if request.method == "POST":
        form = ReleaseForm(request.POST)
        if form.is_valid():
            try:
                release = deploy.create_release(actor=request.user, project=project, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Release {release.version} created.")
                return redirect(_url(project, "release", release.pk))
        status = 400
    return render(request, "deployments/release_create.html", {
        "space": space, "project": project, "section": "overview", "form": form,
        "step_count": project.steps.filter(runbook__isnull=True).count()}, status=status)


@space_page(P.RELEASE_VIEW)
def release_detail(request, space, project_pk: int, pk: int):
    project = _project(space, project_pk)
    release = get_object_or_404(Release.objects.select_related("created_by"), pk=pk, project=project)
    return render(request, "deployments/release.html", {
        "space": space, "project": project, "section": "overview", "release": release,
        "steps": _with_pool_names(space, release.process_snapshot), "variables": release.variables_snapshot,
        "deployments": release.deployments.select_related("environment", "task", "created_by"),
        "may_deploy": may(request, P.DEPLOYMENT_CREATE)})


def _with_pool_names(space, steps: list[dict]) -> list[dict]:
    """Snapshot steps name their pool by id; the page shows its name (or that it has since been deleted)."""
    names = dict(WorkerPool.objects.filter(space=space, pk__in=[s.get("WorkerPoolId") for s in steps if s.get("WorkerPoolId")])
                 .values_list("pk", "name"))
    return [{**step, "PoolName": names.get(step.get("WorkerPoolId"), "a deleted pool") if step.get("WorkerPoolId") else ""}
            for step in steps]


def _queue_for_environment(request, space, queue):
    """Deploy or Run from a chosen environment: (form, status, the queued task or None). A refused pool
    is a 403 whose message names it; bad input is a 400 with the form's errors."""
    form = DeployForm(request.POST, space=space)
    if not form.is_valid():
        return form, 400, None
    try:
        return form, 200, queue(form.cleaned_data["environment"])
    except ValidationError as error:
        _add_errors(form, error)
        return form, 400, None
    except PermissionDenied as error:
        messages.error(request, _reason(error))
        return form, 403, None


@space_page(P.DEPLOYMENT_CREATE)
def release_deploy(request, space, project_pk: int, pk: int):
    """Choose the environment and Deploy: the task's page follows."""
    project = _project(space, project_pk)
    release = get_object_or_404(Release, pk=pk, project=project)
    form, status = DeployForm(space=space, initial={"environment": request.GET.get("environment")}), 200
    if request.method == "POST":
        form, status, task = _queue_for_environment(
            request, space, lambda environment: deploy.deploy_release(actor=request.user, release=release, environment=environment,
                                                                     use_guided_failure=bool(request.POST.get("use_guided_failure"))).task)
        if task is not None:
            return redirect(_task_url(task))
    lifecycle, phases = lifecycles.lifecycle_progress(release)
    return render(request, "deployments/deploy.html", {
        "space": space, "project": project, "section": "overview", "release": release, "form": form,
        "has_environments": Environment.objects.filter(space=space).exists(), "lifecycle": lifecycle, "phases": phases},
        status=status)


# Runbooks -------------------------------------------------------------------------------------------

@space_page(P.PROJECT_VIEW)
def runbook_list(request, space, project_pk: int):
    project = _project(space, project_pk)
    form, status = NameForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = NameForm(request.POST)
        if form.is_valid():
            try:
                runbook = catalog.create_runbook(actor=request.user, project=project, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Runbook {runbook.name} added. Define its process next.")
                return redirect(_url(project, "runbook", runbook.pk))
        status = 400
    return render(request, "deployments/runbooks.html", {
        "space": space, "project": project, "section": "runbooks", "form": form, "may_edit": may(request, P.PROCESS_EDIT),
        "runbooks": project.runbooks.all()}, status=status)


@space_page(P.PROJECT_VIEW)
def runbook_detail(request, space, project_pk: int, pk: int):
    """The runbook's process (the same editor as the deployment process) and Run against an environment."""
    project = _project(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    form, status = DeployForm(space=space), 200
    if request.method == "POST":
        require_permission(request.user, P.RUNBOOK_RUN, space=space)
        form, status, task = _queue_for_environment(
            request, space, lambda environment: deploy.run_runbook(actor=request.user, runbook=runbook, environment=environment).task)
        if task is not None:
            return redirect(_task_url(task))
    return render(request, "deployments/runbook.html", {
        "space": space, "project": project, "section": "runbooks", "runbook": runbook,
        "steps": runbook.steps.select_related("worker_pool"), "steps_url": _step_urls(project, runbook),
        "form": form, "runs": runbook.runs.select_related("environment", "task")[:20],
        "may_edit": may(request, P.PROCESS_EDIT), "may_run": may(request, P.RUNBOOK_RUN)}, status=status)


@space_page(P.PROJECT_VIEW)
def runbook_settings(request, space, project_pk: int, pk: int):
    project = _project(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    may_edit = may(request, P.PROCESS_EDIT)
    form, status = NameForm(initial={"name": runbook.name, "description": runbook.description}), 200
    if request.method == "POST":
        require_permission(request.user, P.PROCESS_EDIT, space=space)
        form = NameForm(request.POST)
        if form.is_valid():
            try:
                catalog.update_runbook(actor=request.user, runbook=runbook, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Runbook {form.cleaned_data['name']} saved.")
                return redirect(_url(project, "runbook", runbook.pk))
        status = 400
    if not may_edit:
        _read_only(form)
    return render(request, "deployments/runbook_settings.html", {
        "space": space, "project": project, "section": "runbooks", "runbook": runbook, "form": form, "may_edit": may_edit},
        status=status)


@space_page(P.PROCESS_EDIT)
@require_POST
def runbook_delete(request, space, project_pk: int, pk: int):
    project = _project(space, project_pk)
    runbook = get_object_or_404(Runbook, pk=pk, project=project)
    try:
        catalog.delete_runbook(actor=request.user, runbook=runbook)
    except ValidationError as error:
        refuse(request, error)
        return redirect(_url(project, "runbook-settings", runbook.pk))
    messages.success(request, f"Runbook {runbook.name} deleted.")
    return redirect(_url(project, "project-runbooks"))


# Library ➜ Packages ---------------------------------------------------------------------------------

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
        "may_push": may(request, P.BUILT_IN_FEED_PUSH)}, status=status)


@space_page(P.BUILT_IN_FEED_PUSH)
@require_POST
def package_delete(request, space, pk: int):
    package = get_object_or_404(Package, pk=pk, space=space)
    try:
        catalog.delete_package(actor=request.user, package=package)
    except ValidationError as error:
        refuse(request, error)
    else:
        messages.success(request, f"Package {package} deleted.")
    return redirect(reverse("packages", args=[space.octopus_id]))


# Tasks ➜ Script Console, and a task's actions -------------------------------------------------------

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
                status = 403
            else:
                return redirect(_task_url(task))
        status = status if status == 403 else 400
    return render(request, "deployments/script_console.html", {"space": space, "form": form}, status=status)


@space_page(P.TASK_VIEW)
@require_POST
def task_intervention(request, space, pk: int):
    from deployments.services.interruptions import pending_interruption_of, submit_interruption, take_interruption_responsibility

    task = get_object_or_404(ServerTask, pk=pk, space=space)
    interruption = pending_interruption_of(task)
    try:
        if interruption is None:
            raise ValidationError("This task is not waiting for an answer.")
        if request.POST.get("assign"):
            take_interruption_responsibility(interruption=interruption, user=request.user)
        else:
            submit_interruption(interruption=interruption, user=request.user, action=request.POST.get("result", ""),
                                note=request.POST.get("note", ""))
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, _reason(error))
    return redirect(_task_url(task))


@space_page(P.TASK_VIEW)
@require_POST
def task_rerun(request, space, pk: int):
    task = get_object_or_404(ServerTask, pk=pk, space=space)
    try:
        again = deploy.rerun_server_task(actor=request.user, task=task)
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, _reason(error))
        return redirect(_task_url(task))
    return redirect(_task_url(again))


@space_page(P.TASK_CANCEL)
@require_POST
def task_cancel(request, space, pk: int):
    from deployments.services.tasks import cancel_server_task

    task = cancel_server_task(task=get_object_or_404(ServerTask, pk=pk, space=space), actor=request.user)
    messages.info(request, f"{task.description}: {task.state}.")
    return redirect(_task_url(task))


# Configuration ➜ Features ---------------------------------------------------------------------------

@login_required
def features(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    if request.method == "POST":
        enabled = request.POST.get("builtin_worker") == "on"
        catalog.set_builtin_worker_enabled(actor=request.user, enabled=enabled)
        messages.success(request, "The built-in worker is " + ("on: server steps run on the server while the default pool "
                                                               "has no workers." if enabled else
                                                               "off: user scripts never run on the server."))
        return redirect("configuration-features")
    from infrastructure.transports.builtin import builtin_worker_account

    account, is_own_account = builtin_worker_account()
    return render(request, "deployments/features.html", {"configuration": ServerConfiguration.current(),
                                                         "may_edit": has_permission(request.user, P.CONFIGURE_SERVER),
                                                         "builtin_account": account, "builtin_is_own_account": is_own_account})
