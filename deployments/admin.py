"""Deployments in the Django admin. Every write here is a catalog service's (ServiceAdmin): validated and audited
as on the pages. Rows that only the deploy services and tasks write (releases, deployments, runs, activity…) are
read-only here."""

from django.contrib import admin

from deployments.models import (
    Artifact,
    Channel,
    Deployment,
    DeploymentTarget,
    Environment,
    Interruption,
    Lifecycle,
    Package,
    Phase,
    Project,
    ProjectGroup,
    Release,
    Runbook,
    RunbookRun,
    RunbookSnapshot,
    RunningScript,
    ServerConfiguration,
    ServerNode,
    Step,
    Variable,
    WorkerLease,
)
from deployments.services import catalog, lifecycles
from deployments.services.interruptions import set_environment_guided_failure
from deployments.services.tasks import cancel_server_task
from portal.admin import ServiceAdmin
from servertasks.models import ActivityNode, ServerTask, TaskLogChunk


def _values(data: dict, names) -> dict:
    """The service's keyword arguments: the admin form's cleaned values of `names`."""
    return {name: data[name] for name in names}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services (interruptions are answered on the task page, nodes and running
    scripts are the cluster's own bookkeeping, releases and deployments come from Create release and Deploy):
    the admin shows them and changes nothing."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ServerTask)
class ServerTaskAdmin(admin.ModelAdmin):
    list_display = ["description", "name", "space", "state", "queued", "started", "completed", "server_node"]
    list_filter = ["state", "name", "space", "has_warnings"]
    search_fields = ["description", "error_message"]
    date_hierarchy = "queued"
    readonly_fields = [f.name for f in ServerTask._meta.fields]
    actions = ["cancel"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a task leaves with its log's retention; deleting one could orphan its leases and scripts

    @admin.action(description="Cancel selected tasks")
    def cancel(self, request, queryset):
        for task in queryset.exclude(state__in=ServerTask.FINAL_STATES):
            cancel_server_task(task=task, actor=request.user)


# Environments and deployment targets ----------------------------------------------------------------


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdmin):
    list_display = ["name", "space", "sort_order", "use_guided_failure"]
    list_filter = ["space"]
    search_fields = ["name", "description"]
    readonly_on_change = ("space",)

    def get_fields(self, request, obj=None):
        return ["space", "name", "description", "use_guided_failure", *(["sort_order"] if obj else [])]

    def create(self, request, data):
        environment = catalog.create_environment(
            actor=request.user, space=data["space"], name=data["name"], description=data["description"]
        )
        if data["use_guided_failure"]:
            set_environment_guided_failure(actor=request.user, environment=environment, enabled=True)
        return environment

    def update(self, request, environment, data):
        saved = catalog.update_environment(
            actor=request.user,
            environment=environment,
            name=data["name"],
            description=data["description"],
            sort_order=data["sort_order"],
        )
        return set_environment_guided_failure(actor=request.user, environment=saved, enabled=data["use_guided_failure"])

    def delete(self, request, environment):
        catalog.delete_environment(actor=request.user, environment=environment)


@admin.register(DeploymentTarget)
class DeploymentTargetAdmin(ServiceAdmin):
    list_display = ["name", "kind", "space", "is_disabled"]
    list_filter = ["kind", "space"]
    fields = ["space", "name", "kind", "uri", "thumbprint", "roles", "environments", "is_disabled"]
    readonly_on_change = ("space",)

    def create(self, request, data):
        return catalog.create_deployment_target(
            actor=request.user, space=data["space"], **_values(data, self.fields[1:])
        )

    def update(self, request, target, data):
        return catalog.update_deployment_target(actor=request.user, target=target, **_values(data, self.fields[1:]))

    def delete(self, request, target):
        catalog.delete_deployment_target(actor=request.user, target=target)


# Projects, their processes, variables and runbooks ---------------------------------------------------


@admin.register(Project)
class ProjectAdmin(ServiceAdmin):
    list_display = ["name", "space", "project_group", "lifecycle", "is_disabled", "created"]
    list_filter = ["space", "is_disabled"]
    search_fields = ["name", "description"]
    readonly_on_change = ("space",)

    def get_fields(self, request, obj=None):
        # A new project's slug comes from its name; its process and variable versions are the services' to raise.
        return ["space", "name", "description", "project_group", "lifecycle", *(["slug", "is_disabled"] if obj else [])]

    def create(self, request, data):
        return catalog.create_project(
            actor=request.user,
            space=data["space"],
            **_values(data, ["name", "description", "project_group", "lifecycle"]),
        )

    def update(self, request, project, data):
        return catalog.update_project(
            actor=request.user,
            project=project,
            **_values(data, ["name", "description", "project_group", "lifecycle", "slug", "is_disabled"]),
        )

    def delete(self, request, project):
        catalog.delete_project(actor=request.user, project=project)


@admin.register(Runbook)
class RunbookAdmin(ServiceAdmin):
    list_display = ["name", "project"]
    fields = ["project", "name", "description"]
    readonly_on_change = ("project",)

    def create(self, request, data):
        return catalog.create_runbook(
            actor=request.user, project=data["project"], **_values(data, ["name", "description"])
        )

    def update(self, request, runbook, data):
        return catalog.update_runbook(actor=request.user, runbook=runbook, **_values(data, ["name", "description"]))

    def delete(self, request, runbook):
        catalog.delete_runbook(actor=request.user, runbook=runbook)


@admin.register(Step)
class StepAdmin(ServiceAdmin):
    list_display = ["name", "project", "runbook", "location", "worker_pool", "sort_order"]
    list_filter = ["location", "action_type"]
    fields = ["project", "runbook", *catalog.STEP_FIELDS]  # the order is the process editor's (up/down buttons)
    readonly_on_change = ("project", "runbook")

    def create(self, request, data):
        return catalog.save_step(
            actor=request.user, project=data["project"], runbook=data["runbook"], **_values(data, catalog.STEP_FIELDS)
        )

    def update(self, request, step, data):
        return catalog.save_step(
            actor=request.user, project=step.project, step=step, **_values(data, catalog.STEP_FIELDS)
        )

    def delete(self, request, step):
        catalog.delete_step(actor=request.user, step=step)


@admin.register(Variable)
class VariableAdmin(ServiceAdmin):
    list_display = ["name", "project", "type"]
    list_filter = ["type"]
    fields = ["project", "name", "type", "worker_pool", "environments"]  # values: on the project's variables page
    readonly_on_change = ("project",)

    def create(self, request, data):
        return catalog.save_variable(actor=request.user, project=data["project"], **_values(data, self.fields[1:]))

    def update(self, request, variable, data):
        stored = Variable.objects.get(pk=variable.pk)  # the form has already set its new type on `variable`
        return catalog.save_variable(
            actor=request.user,
            project=stored.project,
            variable=stored,
            value="" if stored.is_sensitive else stored.value,  # blank keeps a sensitive value
            **_values(data, self.fields[1:]),
        )

    def delete(self, request, variable):
        catalog.delete_variable(actor=request.user, variable=variable)


@admin.register(Package)
class PackageAdmin(ServiceAdmin):
    """Pushed (uploaded) on Library ➜ Packages or through the API; deleted here too, through the same service."""

    list_display = ["package_id", "version", "space", "size", "published"]
    readonly_fields = ["sha256", "size"]

    def delete(self, request, package):
        catalog.delete_package(actor=request.user, package=package)


@admin.register(ServerConfiguration)
class ServerConfigurationAdmin(ServiceAdmin):
    list_display = ["pk", "is_builtin_worker_enabled"]
    fields = ["is_builtin_worker_enabled"]

    def update(self, request, configuration, data):
        return catalog.set_builtin_worker_enabled(actor=request.user, enabled=data["is_builtin_worker_enabled"])


# Lifecycles, groups and channels ---------------------------------------------------------------------


class PhaseInline(admin.TabularInline):
    """Shown with their lifecycle; the phases are edited through the Lifecycles API, which replaces them all at once."""

    model = Phase
    extra = 0
    fields = ["name", "sort_order", "minimum_environments_before_promotion", "is_optional_phase"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Lifecycle)
class LifecycleAdmin(ServiceAdmin):
    list_display = ["name", "space"]
    list_filter = ["space"]
    fields = ["space", "name", "description"]
    readonly_on_change = ("space",)
    inlines = [PhaseInline]

    def create(self, request, data):
        # No phases: every environment in order, as in Octopus.
        return lifecycles.save_lifecycle(
            actor=request.user, space=data["space"], name=data["name"], description=data["description"], phases=[]
        )

    def update(self, request, lifecycle, data):
        """Name and description; the phases are kept as they are."""
        phases = [
            lifecycles.PhaseSpec(
                name=p.name,
                automatic_environments=list(p.automatic_environments.all()),
                optional_environments=list(p.optional_environments.all()),
                minimum_environments_before_promotion=p.minimum_environments_before_promotion,
                is_optional_phase=p.is_optional_phase,
            )
            for p in lifecycle.phases.order_by("sort_order")
        ]
        return lifecycles.save_lifecycle(
            actor=request.user,
            space=lifecycle.space,
            lifecycle=lifecycle,
            phases=phases,
            **_values(data, ["name", "description"]),
        )

    def delete(self, request, lifecycle):
        lifecycles.delete_lifecycle(actor=request.user, lifecycle=lifecycle)


@admin.register(ProjectGroup)
class ProjectGroupAdmin(ServiceAdmin):
    list_display = ["name", "space"]
    list_filter = ["space"]
    fields = ["space", "name", "description"]
    readonly_on_change = ("space",)

    def create(self, request, data):
        return lifecycles.save_project_group(
            actor=request.user, space=data["space"], name=data["name"], description=data["description"]
        )

    def update(self, request, group, data):
        return lifecycles.save_project_group(
            actor=request.user, space=group.space, group=group, name=data["name"], description=data["description"]
        )

    def delete(self, request, group):
        lifecycles.delete_project_group(actor=request.user, group=group)


@admin.register(Channel)
class ChannelAdmin(ServiceAdmin):
    list_display = ["name", "project", "lifecycle", "is_default"]
    fields = ["project", "name", "description", "lifecycle", "is_default"]
    readonly_on_change = ("project",)

    def create(self, request, data):
        return lifecycles.save_channel(
            actor=request.user,
            project=data["project"],
            name=data["name"],
            description=data["description"],
            lifecycle=data["lifecycle"],
            is_default=data["is_default"],
        )

    def update(self, request, channel, data):
        return lifecycles.save_channel(
            actor=request.user,
            project=channel.project,
            channel=channel,
            name=data["name"],
            description=data["description"],
            lifecycle=data["lifecycle"],
            is_default=data["is_default"],
        )

    def delete(self, request, channel):
        lifecycles.delete_channel(actor=request.user, channel=channel)


# Written by Create release, Deploy, Run and the tasks they queue: read here ---------------------------


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ["version", "project", "created"]
    exclude = ["variables_snapshot"]  # sensitive values stay out of the admin, even encrypted


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "task", "created"]


@admin.register(RunbookRun)
class RunbookRunAdmin(ReadOnlyAdmin):
    list_display = ["runbook", "environment", "task", "created"]


@admin.register(RunbookSnapshot)
class RunbookSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["name", "runbook", "created"]
    exclude = ["variables_snapshot"]  # sensitive values stay out of the admin, even encrypted


@admin.register(Phase)
class PhaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "lifecycle", "sort_order", "is_optional_phase"]


@admin.register(ActivityNode)
class ActivityNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "task", "status", "started", "ended"]
    list_filter = ["status"]


@admin.register(WorkerLease)
class WorkerLeaseAdmin(ReadOnlyAdmin):
    list_display = ["worker", "task", "step_name", "rule", "created"]


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["name", "task", "size", "created"]
    exclude = ["content"]


@admin.register(Interruption)
class InterruptionAdmin(ReadOnlyAdmin):
    list_display = ["title", "type", "task", "is_pending", "result", "created"]
    list_filter = ["type", "is_pending"]


@admin.register(ServerNode)
class ServerNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "max_concurrent_tasks", "last_seen", "stopped"]


@admin.register(RunningScript)
class RunningScriptAdmin(ReadOnlyAdmin):
    list_display = ["task", "worker", "ticket"]


@admin.register(TaskLogChunk)
class TaskLogChunkAdmin(ReadOnlyAdmin):
    """Compressed lines: read them on the task page or through /raw, where they are shown masked."""

    list_display = ["task", "node", "first_sequence", "last_sequence", "compressed"]
    exclude = ["data"]
