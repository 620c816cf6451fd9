"""Every portal model in the Django admin. Writes go through the services or are audited here."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse

from portal.models import ApiKey, Event, ScopedUserRole, Space, Team, User, UserRole
from portal.services import api_keys, spaces, teams
from portal.services.audit import record_event
from portal.views.forms import add_refusal


class AuditedAdmin(admin.ModelAdmin):
    """Records an audit event for every admin create, change and delete."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        record_event(
            actor=request.user,
            category=Event.Category.MODIFIED if change else Event.Category.CREATED,
            document=obj,
            changes={
                name: [None, str(form.cleaned_data.get(name))]
                for name in form.changed_data
                if "password" not in name and "key" not in name
            },
        )

    def delete_model(self, request, obj):
        record_event(actor=request.user, category=Event.Category.DELETED, document=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class ServiceAdmin(admin.ModelAdmin):
    """An admin whose writes are the model's services, so an admin edit is validated and audited like a page's.

    A subclass says how: `create(request, data)` and `update(request, obj, data)` call the create/update service
    with the form's cleaned data and return the model; `delete(request, obj)` calls the delete service. One left
    as None makes that write unavailable here. The service runs as the form's last validation step, so its
    refusal (a ValidationError naming the field) is shown on the admin form, as a page shows it, never a 500;
    the admin then has nothing left to save."""

    create = None
    update = None
    delete = None
    readonly_on_change: tuple[str, ...] = ()  # what the services never change (the space, the owning project)

    def has_add_permission(self, request):
        return self.create is not None and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.update is not None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.delete is not None and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *(self.readonly_on_change if obj else ())]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceForm(form_class):
            def _post_clean(self):
                super()._post_clean()
                if self._errors:
                    return
                try:
                    if obj is None:
                        self.instance = model_admin.create(request, self.cleaned_data)
                    else:
                        self.instance = model_admin.update(request, obj, self.cleaned_data)
                except ValidationError as error:
                    add_refusal(self, error)

        return ServiceForm

    def save_model(self, request, obj, form, change):
        """Nothing left to save: the service saved the object while the form was validated."""

    def save_related(self, request, form, formsets, change):
        """Nor its relations: the service set them too."""

    def delete_model(self, request, obj):
        self.delete(request, obj)

    def delete_queryset(self, request, queryset):
        """Delete selected: each through the service; a refused one is named and the others are deleted."""
        for obj in queryset:
            try:
                self.delete(request, obj)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as error:  # the service refused (in use, …): say why on the object's page
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            opts = self.model._meta
            return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id]))


@admin.register(Space)
class SpaceAdmin(ServiceAdmin):
    list_display = ["name", "slug", "is_default", "task_queue_stopped", "created"]
    list_filter = ["is_default", "task_queue_stopped"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "task_queue_stopped", "is_default"]
    readonly_fields = ["is_default"]

    def create(self, request, data):
        return spaces.create_space(actor=request.user, name=data["name"], description=data["description"])

    def update(self, request, space, data):
        return spaces.update_space(
            actor=request.user,
            space=space,
            name=data["name"],
            description=data["description"],
            task_queue_stopped=data["task_queue_stopped"],
        )

    def delete(self, request, space):
        spaces.delete_space(actor=request.user, space=space)


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    """Django's own user forms (passwords hashed and checked by its validators), audited here."""

    list_display = ["username", "display_name", "email", "is_active", "is_service", "is_superuser", "last_login"]
    list_filter = ["is_active", "is_service", "is_superuser", "teams"]
    search_fields = ["username", "display_name", "email"]
    fieldsets = DjangoUserAdmin.fieldsets + (("Reef", {"fields": ("display_name", "is_service")}),)


@admin.register(UserRole)
class UserRoleAdmin(AuditedAdmin):
    list_display = ["name", "is_built_in"]
    list_filter = ["is_built_in"]
    search_fields = ["name", "description"]

    def has_change_permission(self, request, obj=None):
        return obj is None or not obj.is_built_in

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_built_in


class ScopedUserRoleInline(admin.TabularInline):
    model = ScopedUserRole
    extra = 0


@admin.register(Team)
class TeamAdmin(ServiceAdmin):
    """Members through the team services (which keep guardian's group in step); roles on the Teams page."""

    list_display = ["name", "space", "is_built_in", "includes_everyone"]
    list_filter = ["space", "is_built_in"]
    search_fields = ["name", "description", "members__username"]
    fields = ["name", "description", "space", "members", "is_built_in", "includes_everyone"]
    filter_horizontal = ["members"]
    readonly_fields = ["is_built_in", "includes_everyone"]
    readonly_on_change = ("space",)

    def create(self, request, data):
        return teams.create_team(
            actor=request.user,
            name=data["name"],
            description=data["description"],
            space=data["space"],
            members=list(data["members"]),
        )

    def update(self, request, team, data):
        return teams.update_team(
            actor=request.user,
            team=team,
            name=data["name"],
            description=data["description"],
            members=list(data["members"]),
        )

    def delete(self, request, team):
        teams.delete_team(actor=request.user, team=team)


@admin.register(ScopedUserRole)
class ScopedUserRoleAdmin(ServiceAdmin):
    """A team's role in a space is granted or removed, never edited (as on the Teams page)."""

    list_display = ["team", "role", "space"]
    list_filter = ["role", "space"]
    search_fields = ["team__name", "role__name"]
    fields = ["team", "role", "space"]

    def create(self, request, data):
        return teams.assign_role(actor=request.user, team=data["team"], role=data["role"], space=data["space"])

    def delete(self, request, scoped_role):
        teams.remove_role(actor=request.user, scoped_role=scoped_role)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Read-only but for revoking (through the service, audited): keys are created on the profile page or with
    `manage.py create_api_key`, and shown once."""

    list_display = ["purpose", "user", "hint", "created", "expires", "last_used", "revoked"]
    list_filter = ["revoked", "expires"]
    search_fields = ["purpose", "user__username"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list and its action

    def has_delete_permission(self, request, obj=None):
        return False  # a revoked key stays on record

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked__isnull=True):
            api_keys.revoke_api_key(actor=request.user, api_key=key)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred", "username", "category", "document_type", "document_name", "space", "message"]
    list_filter = ["category", "document_type", "space"]
    search_fields = ["message", "username", "document_id", "document_name"]
    date_hierarchy = "occurred"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail is append-only
