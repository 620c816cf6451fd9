"""What editing any resource of the catalog shares: a unique name, an audited save, a new order."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from portal.models import Event, User
from portal.services.audit import differences, record_event, snapshot

ROLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def unique_name(
    queryset: QuerySet, name: str, what: str, *, exclude_pk: int | None = None, max_length: int = 200
) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [f"Give the {what} a name."]})
    if len(name) > max_length:
        raise ValidationError({"name": [f"A {what} name has at most {max_length} characters."]})
    if queryset.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ValidationError({"name": [f"There is already a {what} named {name}."]})
    return name


def record_saved(
    actor: User, document, before: dict, fields: list[str], secret_fields: frozenset[str] = frozenset(), **event
) -> None:
    """Record Created (no `before`) or Modified with what changed; nothing when nothing did."""
    changes = differences(before, snapshot(document, fields, secret_fields))
    if changes or not before:
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED if before else Event.Category.CREATED,
            document=document,
            changes=changes,
            **event,
        )


def reorder(queryset: QuerySet, ordered_ids: list[int], what: str) -> list:
    rows = {row.pk: row for row in queryset.select_for_update()}
    if sorted(ordered_ids) != sorted(rows):
        raise ValidationError({"order": [f"Give every {what} exactly once."]})
    for position, pk in enumerate(ordered_ids):
        queryset.model.objects.filter(pk=pk).update(sort_order=position)
    return [rows[pk] for pk in ordered_ids]


def moved(ordered_ids: list[int], pk: int, direction: str) -> list[int]:
    """`ordered_ids` with `pk` one place up or down (unchanged at either end): for up/down buttons."""
    ids = list(ordered_ids)
    i = ids.index(pk)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ids):
        ids[i], ids[j] = ids[j], ids[i]
    return ids
