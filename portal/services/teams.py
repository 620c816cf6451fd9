"""Teams, their members and the roles they hold."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.models import Event, ScopedUserRole, Space, Team, User, UserRole
from portal.permissions import BUILT_IN_ROLES, SYSTEM_PERMISSIONS, Permission
from portal.services.access import has_permission, require_permission, spaces_visible_to
from portal.services.audit import differences, record_event, snapshot

_AUDITED = ["name", "description", "space", "members"]

ADMINISTRATORS_TEAM = "Octopus Administrators"
EVERYONE_TEAM = "Everyone"


def ensure_built_in_roles() -> None:
    for name, (description, permissions) in BUILT_IN_ROLES.items():
        UserRole.objects.update_or_create(
            name=name,
            defaults={"description": description, "permissions": sorted(permissions), "is_built_in": True},
        )


def ensure_built_in_teams() -> Team:
    """The administrators' team (System administrator at system level) and Everyone. Returns the former."""
    ensure_built_in_roles()
    admins = Team.objects.filter(name=ADMINISTRATORS_TEAM, space__isnull=True).first()
    if admins is None:
        admins = _new_team(
            name=ADMINISTRATORS_TEAM, description="Administrators of this Reef server.", space=None, is_built_in=True
        )
        ScopedUserRole.objects.create(team=admins, role=UserRole.objects.get(name="System administrator"))
    if not Team.objects.filter(name=EVERYONE_TEAM, space__isnull=True).exists():
        _new_team(
            name=EVERYONE_TEAM,
            description="Every user of this Reef server.",
            space=None,
            is_built_in=True,
            includes_everyone=True,
        )
    return admins


def _new_team(*, name: str, description: str, space: Space | None, **flags) -> Team:
    group = Group.objects.create(name=f"team:{uuid.uuid4().hex}")
    return Team.objects.create(name=name, description=description, space=space, group=group, **flags)


def _validate_name(name: str, space: Space | None, exclude_pk: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A team needs a name."})
    clash = Team.objects.filter(name__iexact=name, space=space).exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": f"A team named {name!r} already exists{' in ' + space.name if space else ''}."})
    return name


def _set_members(team: Team, members: list[User]) -> None:
    team.members.set(members)
    team.group.user_set.set(members)


@transaction.atomic
def create_team(
    *, actor: User, name: str, description: str = "", space: Space | None = None, members: list[User] | None = None
) -> Team:
    name = _validate_name(name, space)
    try:
        team = _new_team(name=name, description=description, space=space)
    except IntegrityError:
        raise ValidationError({"name": f"A team named {name!r} already exists."}) from None
    _set_members(team, members or [])
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=team,
        space=space,
        changes=differences({}, snapshot(team, _AUDITED)),
    )
    return team


@transaction.atomic
def update_team(
    *,
    actor: User,
    team: Team,
    name: str | None = None,
    description: str | None = None,
    members: list[User] | None = None,
) -> Team:
    team = Team.objects.select_for_update().get(pk=team.pk)
    before = snapshot(team, _AUDITED)
    if name is not None and name.strip() != team.name:
        if team.is_built_in:
            raise ValidationError({"name": "Built-in teams cannot be renamed."})
        team.name = _validate_name(name, team.space, exclude_pk=team.pk)
    if description is not None:
        team.description = description
    team.save()
    if members is not None:
        if team.includes_everyone:
            raise ValidationError({"members": "Everyone includes every user; its members cannot be changed."})
        _set_members(team, members)
    changes = differences(before, snapshot(team, _AUDITED))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=team, space=team.space, changes=changes)
    return team


@transaction.atomic
def delete_team(*, actor: User, team: Team) -> None:
    if team.is_built_in:
        raise ValidationError("Built-in teams cannot be deleted.")
    record_event(actor=actor, category=Event.Category.DELETED, document=team, space=team.space)
    group = team.group
    team.delete()
    group.delete()


@transaction.atomic
def assign_role(*, actor: User, team: Team, role: UserRole, space: Space | None) -> ScopedUserRole:
    """Grant `role` to `team` in `space`. Space None: at system level, and (for a system team's space
    permissions) in every space, as Octopus's "all spaces" scope."""
    if team.space is not None and space != team.space:
        raise ValidationError({"space": f"{team.name} belongs to {team.space.name}; its roles apply there only."})
    if space is not None and set(role.permissions) <= SYSTEM_PERMISSIONS:
        raise ValidationError({"space": f"{role.name} holds system permissions only; grant it at system level."})
    scoped, created = ScopedUserRole.objects.get_or_create(team=team, role=role, space=space)
    if created:
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED,
            document=team,
            space=team.space,
            message=f"Role {role.name} granted to team {team.name} "
            f"{'in ' + space.name if space else 'at system level'}",
            changes={"roles": [None, f"{role.name} ({space.name if space else 'system'})"]},
        )
    return scoped


@transaction.atomic
def remove_role(*, actor: User, scoped_role: ScopedUserRole) -> None:
    team, role, space = scoped_role.team, scoped_role.role, scoped_role.space
    if team.name == ADMINISTRATORS_TEAM and team.is_built_in and role.name == "System administrator" and space is None:
        raise ValidationError("The administrators' team keeps its System administrator role.")
    scoped_role.delete()
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document=team,
        space=team.space,
        message=f"Role {role.name} removed from team {team.name}",
        changes={"roles": [f"{role.name} ({space.name if space else 'system'})", None]},
    )


def teams_visible_to(user: User):
    """Space teams where the user has TeamView; system teams for those with TeamView anywhere."""
    if user.is_superuser:
        return Team.objects.all()
    spaces = [s for s in spaces_visible_to(user) if has_permission(user, Permission.TEAM_VIEW, space=s)]
    teams = Team.objects.filter(space__in=spaces)
    if spaces or has_permission(user, Permission.USER_VIEW):
        teams = Team.objects.filter(space__in=spaces) | Team.objects.filter(space__isnull=True)
    return teams


def require_team_edit(user: User, space: Space | None) -> None:
    """Space teams are edited with TeamEdit in their space; system teams need ConfigureServer."""
    if space is None:
        require_permission(user, Permission.CONFIGURE_SERVER)
    else:
        require_permission(user, Permission.TEAM_EDIT, space=space)
