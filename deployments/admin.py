from django.contrib import admin

from deployments.models import ServerTask, TaskLogLine


class TaskLogLineInline(admin.TabularInline):
    model = TaskLogLine
    extra = 0
    can_delete = False
    readonly_fields = ["sequence", "occurred", "category", "text"]
    max_num = 0


@admin.register(ServerTask)
class ServerTaskAdmin(admin.ModelAdmin):
    list_display = ["description", "name", "space", "state", "queued", "started", "completed", "server_node"]
    list_filter = ["state", "name", "space", "has_warnings"]
    search_fields = ["description", "error_message"]
    date_hierarchy = "queued"
    readonly_fields = [f.name for f in ServerTask._meta.fields]
    inlines = [TaskLogLineInline]

    def has_add_permission(self, request):
        return False


@admin.register(TaskLogLine)
class TaskLogLineAdmin(admin.ModelAdmin):
    list_display = ["task", "sequence", "category", "occurred", "text"]
    list_filter = ["category"]
    search_fields = ["text"]
    readonly_fields = ["task", "sequence", "occurred", "category", "text"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None
