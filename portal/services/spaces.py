"""Spaces: create, edit, delete. A Default space always exists."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from portal.models import Event, Space, User
from portal.services.audit import differences, record_event, snapshot

_AUDITED = ["name", "slug", "description", "is_default", "task_queue_stopped"]

# Other apps hook in here to give every new space what it must hold (its default worker pool, …).
space_created_hooks: list = []


def _unique_slug(name: str, exclude_pk: int | None = None) -> str:
    base = slugify(name) or "space"
    slug, n = base, 2
    while Space.objects.filter(slug=slug).exclude(pk=exclude_pk).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def create_space(*, actor: User | None, name: str, description: str = "") -> Space:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A space needs a name."})
    if Space.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"A space named {name!r} already exists."})
    space = Space.objects.create(
        name=name, slug=_unique_slug(name), description=description, is_default=not Space.objects.exists()
    )
    for hook in space_created_hooks:
        hook(space)
    record_event(actor=actor, category=Event.Category.CREATED, document=space, space=space)
    return space


def ensure_default_space() -> Space:
    space = Space.objects.filter(is_default=True).first()
    return space or create_space(actor=None, name="Default", description="The space every Reef starts with.")


@transaction.atomic
def update_space(
    *,
    actor: User,
    space: Space,
    name: str | None = None,
    description: str | None = None,
    task_queue_stopped: bool | None = None,
) -> Space:
    space = Space.objects.select_for_update().get(pk=space.pk)
    before = snapshot(space, _AUDITED)
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "A space needs a name."})
        if Space.objects.filter(name__iexact=name).exclude(pk=space.pk).exists():
            raise ValidationError({"name": f"A space named {name!r} already exists."})
        space.name, space.slug = name, _unique_slug(name, exclude_pk=space.pk)
    if description is not None:
        space.description = description
    if task_queue_stopped is not None:
        space.task_queue_stopped = task_queue_stopped
    space.save()
    changes = differences(before, snapshot(space, _AUDITED))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=space, space=space, changes=changes)
    return space


@transaction.atomic
def delete_space(*, actor: User, space: Space) -> None:
    if space.is_default:
        raise ValidationError("The default space cannot be deleted.")
    record_event(actor=actor, category=Event.Category.DELETED, document=space, space=None)
    space.delete()
