"""Configuration ➜ Features."""

from __future__ import annotations

from django.db import transaction

from deployments.models import ServerConfiguration
from portal.models import Event, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event


@transaction.atomic
def set_builtin_worker_enabled(*, actor: User, enabled: bool) -> ServerConfiguration:
    require_permission(actor, Permission.CONFIGURE_SERVER)
    configuration = ServerConfiguration.objects.select_for_update().get(pk=ServerConfiguration.current().pk)
    if configuration.is_builtin_worker_enabled != enabled:
        configuration.is_builtin_worker_enabled = enabled
        configuration.save()
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED,
            document_type="ServerConfiguration",
            document_name="Features",
            message=f"The built-in worker was {'enabled' if enabled else 'disabled'}",
            changes={"is_builtin_worker_enabled": [not enabled, enabled]},
        )
    return configuration
