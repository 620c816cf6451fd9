from django.contrib import admin

from deployments.models import (
    Artifact, Channel, Deployment, DeploymentTarget, Environment, Interruption, Lifecycle, Package, Phase, Project,
    ProjectGroup, Release, Runbook, RunbookRun, RunbookSnapshot, RunningScript, ServerConfiguration, ServerNode, Step,
    Variable, WorkerLease,
)
from servertasks.models import ActivityNode, ServerTask, TaskLogChunk


@admin.register(ServerTask)
class ServerTaskAdmin(admin.ModelAdmin):
    list_display = ["description", "name", "space", "state", "queued", "started", "completed", "server_node"]
    list_filter = ["state", "name", "space", "has_warnings"]
    search_fields = ["description", "error_message"]
    date_hierarchy = "queued"
    readonly_fields = [f.name for f in ServerTask._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "space", "sort_order"]
    list_filter = ["space"]


@admin.register(DeploymentTarget)
class DeploymentTargetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "space", "is_disabled"]
    list_filter = ["kind", "space"]


class StepInline(admin.StackedInline):
    model = Step
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "space", "created"]
    list_filter = ["space"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [StepInline]


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "runbook", "location", "worker_pool", "sort_order"]
    list_filter = ["location", "action_type"]


@admin.register(Variable)
class VariableAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "type"]
    list_filter = ["type"]
    exclude = ["value"]  # sensitive values are set through the project's variables page, never shown


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = ["package_id", "version", "space", "size", "published"]
    readonly_fields = ["sha256", "size"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["version", "project", "created"]
    exclude = ["variables_snapshot"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "task", "created"]


@admin.register(RunbookRun)
class RunbookRunAdmin(admin.ModelAdmin):
    list_display = ["runbook", "environment", "task", "created"]


@admin.register(ActivityNode)
class ActivityNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "status", "started", "ended"]
    list_filter = ["status"]


@admin.register(WorkerLease)
class WorkerLeaseAdmin(admin.ModelAdmin):
    list_display = ["worker", "task", "step_name", "rule", "created"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "size", "created"]
    exclude = ["content"]


@admin.register(ServerConfiguration)
class ServerConfigurationAdmin(admin.ModelAdmin):
    list_display = ["pk", "is_builtin_worker_enabled"]


# Lifecycles, groups, channels and runbook snapshots (issue 13): read here, written through the API or pages.

class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0
    fields = ["name", "sort_order", "minimum_environments_before_promotion", "is_optional_phase"]


@admin.register(Lifecycle)
class LifecycleAdmin(admin.ModelAdmin):
    list_display = ["name", "space"]
    list_filter = ["space"]
    inlines = [PhaseInline]


@admin.register(Phase)
class PhaseAdmin(admin.ModelAdmin):
    list_display = ["name", "lifecycle", "sort_order", "is_optional_phase"]


@admin.register(ProjectGroup)
class ProjectGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "space"]
    list_filter = ["space"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "lifecycle", "is_default"]


@admin.register(RunbookSnapshot)
class RunbookSnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "runbook", "created"]
    readonly_fields = ["runbook", "name", "process_snapshot", "created"]
    exclude = ["variables_snapshot"]  # sensitive values stay out of the admin, even encrypted


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services (interruptions are answered on the task page, nodes and running
    scripts are the cluster's own bookkeeping): the admin shows them and changes nothing."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
