"""Projects: a unique name and slug, in a project group with a lifecycle, deleted only before their first deployment."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from deployments.models import Project, Release
from deployments.services import lifecycles
from deployments.services.catalog.editing import record_saved, unique_name
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot

PROJECT_FIELDS = ["name", "slug", "description", "project_group", "lifecycle", "is_disabled"]


def _slug(space: Space, name: str, exclude_pk: int | None = None) -> str:
    base = slugify(name)[:180] or "project"
    taken = set(
        Project.objects.filter(space=space, slug__startswith=base).exclude(pk=exclude_pk).values_list("slug", flat=True)
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _project_links(space: Space, project_group, lifecycle) -> None:
    errors = {}
    if project_group is not None and project_group.space_id != space.pk:
        errors["project_group"] = [f"{project_group.name} is not a project group of {space.name}."]
    if lifecycle is not None and lifecycle.space_id != space.pk:
        errors["lifecycle"] = [f"{lifecycle.name} is not a lifecycle of {space.name}."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def create_project(
    *, actor: User, space: Space, name: str, description: str = "", project_group=None, lifecycle=None
) -> Project:
    """In the Default Project Group with the Default Lifecycle unless told otherwise; with its Default channel."""
    require_permission(actor, Permission.PROJECT_EDIT, space=space)
    name = unique_name(Project.objects.filter(space=space), name, "project")
    _project_links(space, project_group, lifecycle)
    try:
        project = Project.objects.create(
            space=space,
            name=name,
            slug=_slug(space, name),
            description=description,
            project_group=project_group or lifecycles.default_project_group(space),
            lifecycle=lifecycle or lifecycles.default_lifecycle(space),
        )
    except IntegrityError:
        raise ValidationError({"name": [f"There is already a project named {name}."]}) from None
    lifecycles.default_channel(project)
    record_saved(actor, project, {}, PROJECT_FIELDS)
    return project


@transaction.atomic
def update_project(
    *,
    actor: User,
    project: Project,
    name: str,
    description: str = "",
    project_group=None,
    lifecycle=None,
    slug: str | None = None,
    is_disabled: bool | None = None,
) -> Project:
    """`project_group`, `lifecycle`, `slug` and `is_disabled` None keep what the project has."""
    require_permission(actor, Permission.PROJECT_EDIT, space=project.space)
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = snapshot(project, PROJECT_FIELDS)
    name = unique_name(Project.objects.filter(space=project.space_id), name, "project", exclude_pk=project.pk)
    _project_links(project.space, project_group, lifecycle)
    if name != project.name:
        project.name, project.slug = name, _slug(project.space, name, exclude_pk=project.pk)
    if slug is not None and slug != project.slug:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,199}", slug):
            raise ValidationError({"slug": ["A slug is lower-case letters, digits and dashes."]})
        if Project.objects.filter(space=project.space_id, slug=slug).exclude(pk=project.pk).exists():
            raise ValidationError({"slug": [f"Another project has the slug {slug}."]})
        project.slug = slug
    project.project_group = project_group or project.project_group
    project.lifecycle = lifecycle or project.lifecycle
    if is_disabled is not None:
        project.is_disabled = is_disabled
    project.description = description
    project.save()
    record_saved(actor, project, before, PROJECT_FIELDS)
    return project


@transaction.atomic
def delete_project(*, actor: User, project: Project) -> None:
    """Refused once it has been deployed: deployments are history, and history is not deleted by accident."""
    require_permission(actor, Permission.PROJECT_EDIT, space=project.space)
    deployed = Release.objects.filter(project=project, deployments__isnull=False).distinct().count()
    if deployed:
        raise ValidationError(f"{project.name} has deployed releases ({deployed}) and cannot be deleted.")
    record_event(actor=actor, category=Event.Category.DELETED, document=project, space=project.space)
    project.delete()
