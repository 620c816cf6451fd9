"""Infrastructure in the Django admin. Workers are created through the pages or the API (same
validation as agents); here they are searched, filtered, enabled/disabled and health-checked."""

from django.contrib import admin, messages

from infrastructure.models import Account, MachinePolicy, ServerCertificate, Worker, WorkerPool
from infrastructure.services import health, workers
from portal.admin import AuditedAdmin


@admin.register(WorkerPool)
class WorkerPoolAdmin(AuditedAdmin):
    list_display = ["name", "space", "pool_type", "is_default", "sort_order"]
    list_filter = ["space", "pool_type", "is_default"]
    search_fields = ["name", "description"]
    readonly_fields = ["is_default", "pool_type", "space"]

    def has_add_permission(self, request):
        return False  # pools get their default-pool and naming rules from the pages and API


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "space", "communication_style", "health_status", "is_disabled", "last_health_check"]
    list_filter = ["space", "communication_style", "health_status", "is_disabled", "worker_pools"]
    search_fields = ["name", "uri", "thumbprint", "host"]
    readonly_fields = [f.name for f in Worker._meta.fields] + ["worker_pools"]
    actions = ["enable", "disable", "check_health"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list and its actions; edits go through the validated pages and API

    @admin.action(description="Enable selected workers")
    def enable(self, request, queryset):
        for worker in queryset:
            workers.set_worker_disabled(actor=request.user, worker=worker, disabled=False)

    @admin.action(description="Disable selected workers")
    def disable(self, request, queryset):
        for worker in queryset:
            workers.set_worker_disabled(actor=request.user, worker=worker, disabled=True)

    @admin.action(description="Check health of selected workers")
    def check_health(self, request, queryset):
        for worker in queryset:
            health.request_health_check(actor=request.user, worker=worker)
        messages.info(request, f"{queryset.count()} health check(s) queued.")

    def delete_model(self, request, obj):
        workers.delete_worker(actor=request.user, worker=obj)

    def delete_queryset(self, request, queryset):
        for worker in queryset:
            workers.delete_worker(actor=request.user, worker=worker)


@admin.register(MachinePolicy)
class MachinePolicyAdmin(AuditedAdmin):
    list_display = ["name", "space", "is_default", "health_check_interval", "health_check_type", "connectivity_behavior"]
    list_filter = ["space", "is_default", "health_check_type", "connectivity_behavior", "delete_behavior"]
    search_fields = ["name", "description"]
    readonly_fields = ["is_default"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "space", "account_type", "username"]
    list_filter = ["space", "account_type"]
    search_fields = ["name", "username"]
    exclude = ["private_key_encrypted", "passphrase_encrypted", "password_encrypted"]  # never shown, even encrypted
    readonly_fields = ["space", "account_type"]

    def has_add_permission(self, request):
        return False  # secrets are entered on the Accounts page or through the API


@admin.register(ServerCertificate)
class ServerCertificateAdmin(admin.ModelAdmin):
    list_display = ["thumbprint", "created", "is_current"]
    exclude = ["private_key_encrypted"]
    readonly_fields = ["thumbprint", "certificate_pem", "created", "is_current"]

    def has_add_permission(self, request):
        return False
