"""Audit events: who changed what, when, and how. Every configuration write records one."""

from __future__ import annotations

from typing import Any

from django.db import models

from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import has_permission, spaces_visible_to

REDACTED = "********"


def snapshot(obj: models.Model, fields: list[str], secret_fields: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The audited fields of `obj` as plain JSON values; secrets appear only as a marker."""
    values: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        if name in secret_fields:
            value = REDACTED if value else ""
        elif isinstance(value, models.Model):
            value = str(value)
        elif hasattr(value, "all"):  # a related manager
            value = sorted(str(item) for item in value.all())
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
            value = str(value)
        values[name] = value
    return values


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [before.get(name), after.get(name)] for name in after if before.get(name) != after.get(name)}


def record_event(
    *,
    actor: User | None,
    category: str,
    document: models.Model | None = None,
    document_type: str = "",
    document_id: str = "",
    document_name: str = "",
    space: Space | None = None,
    message: str = "",
    changes: dict[str, Any] | None = None,
) -> Event:
    if document is not None:
        document_type = document_type or type(document).__name__
        document_id = document_id or getattr(document, "octopus_id", str(document.pk))
        document_name = document_name or str(document)
        if space is None:
            space = getattr(document, "space", None) if isinstance(getattr(document, "space", None), Space) else None
    if not message:
        verb = {"Created": "created", "Modified": "modified", "Deleted": "deleted"}.get(category, category)
        message = f"{document_type} {document_name} {verb}".strip()
    if actor is not None and not actor.is_authenticated:
        actor = None
    return Event.objects.create(
        space=space,
        user=actor,
        username=actor.username if actor else "system",
        category=category,
        document_type=document_type,
        document_id=document_id,
        document_name=document_name[:200],
        message=message,
        changes=changes or {},
    )


def events_visible_to(user: User):
    """Events in spaces where the user has EventView; system events need a system-level grant."""
    spaces = [space for space in spaces_visible_to(user) if has_permission(user, Permission.EVENT_VIEW, space=space)]
    events = Event.objects.filter(space__in=spaces)
    if has_permission(user, Permission.USER_VIEW) or user.is_superuser:
        events = Event.objects.filter(models.Q(space__in=spaces) | models.Q(space__isnull=True))
    return events.select_related("space")
