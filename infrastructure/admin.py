"""Infrastructure in the Django admin. Workers are created through the pages or the API (same
validation as agents); here they are searched, filtered, enabled/disabled and health-checked. Pools,
machine policies and accounts are written through their services (ServiceAdmin), so edits here are
validated and audited as on the pages."""

from django.contrib import admin, messages

from infrastructure.models import Account, MachinePolicy, ServerCertificate, Worker, WorkerPool
from infrastructure.services import accounts, health, policies, pools, workers
from portal.admin import ServiceAdmin


@admin.register(WorkerPool)
class WorkerPoolAdmin(ServiceAdmin):
    """No add here: a new pool's place and team grants are chosen on the Worker Pools page or through the API."""

    list_display = ["name", "space", "pool_type", "is_default", "sort_order"]
    list_filter = ["space", "pool_type", "is_default"]
    search_fields = ["name", "description"]
    fields = ["space", "pool_type", "is_default", "name", "description", "worker_type", "sort_order"]
    readonly_fields = ["is_default", "pool_type", "space"]

    def update(self, request, pool, data):
        return pools.update_worker_pool(
            actor=request.user,
            pool=pool,
            name=data["name"],
            description=data["description"],
            worker_type=data["worker_type"],
            sort_order=data["sort_order"],
        )

    def delete(self, request, pool):
        pools.delete_worker_pool(actor=request.user, pool=pool)


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
class MachinePolicyAdmin(ServiceAdmin):
    list_display = [
        "name",
        "space",
        "is_default",
        "health_check_interval",
        "health_check_type",
        "connectivity_behavior",
    ]
    list_filter = ["space", "is_default", "health_check_type", "connectivity_behavior", "delete_behavior"]
    search_fields = ["name", "description"]
    fields = ["space", "is_default", *policies.FIELDS]
    readonly_fields = ["is_default"]
    readonly_on_change = ("space",)

    def create(self, request, data):
        return policies.create_machine_policy(
            actor=request.user, space=data["space"], **{name: data[name] for name in policies.FIELDS}
        )

    def update(self, request, policy, data):
        return policies.update_machine_policy(
            actor=request.user, policy=policy, **{name: data[name] for name in policies.FIELDS}
        )

    def delete(self, request, policy):
        policies.delete_machine_policy(actor=request.user, policy=policy)


@admin.register(Account)
class AccountAdmin(ServiceAdmin):
    """No add here: secrets are entered on the Accounts page or through the API, and never shown again."""

    list_display = ["name", "space", "account_type", "username"]
    list_filter = ["space", "account_type"]
    search_fields = ["name", "username"]
    fields = ["space", "account_type", "name", "username", "description"]  # never the secrets, even encrypted
    readonly_fields = ["space", "account_type"]

    def update(self, request, account, data):
        stored = Account.objects.get(
            pk=account.pk
        )  # the service compares with what is stored; the form changed `account`
        return accounts.save_account(
            actor=request.user,
            space=stored.space,
            account=stored,
            name=data["name"],
            account_type=stored.account_type,
            username=data["username"],
            description=data["description"],
        )

    def delete(self, request, account):
        accounts.delete_account(actor=request.user, account=account)


@admin.register(ServerCertificate)
class ServerCertificateAdmin(admin.ModelAdmin):
    list_display = ["thumbprint", "created", "is_current"]
    exclude = ["private_key_encrypted"]
    readonly_fields = ["thumbprint", "certificate_pem", "created", "is_current"]

    def has_add_permission(self, request):
        return False
