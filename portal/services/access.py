"""May this user do P here? One answer for every page, API view, admin screen and websocket."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_groups_with_perms

from portal.models import ScopedUserRole, Space, Team, User
from portal.permissions import SYSTEM_PERMISSIONS, Permission

_CACHE_ATTR = "_reef_permissions"


def teams_of(user: User) -> QuerySet[Team]:
    return Team.objects.filter(Q(members=user) | Q(includes_everyone=True)).distinct()


def permissions_of(user: User, space: Space | None = None) -> frozenset[str]:
    """Every permission `user` holds in `space` (None: at system level). Cached on the user object."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(Permission)
    cache = user.__dict__.setdefault(_CACHE_ATTR, {})
    key = space.pk if space else None
    if key not in cache:
        roles = ScopedUserRole.objects.filter(team__in=teams_of(user))
        if space is None:
            roles = roles.filter(space__isnull=True)
        else:
            # A space team's roles count only in its own space; a system team's unscoped roles count everywhere.
            roles = roles.filter(Q(space=space) | Q(space__isnull=True, team__space__isnull=True))
        granted: set[str] = set()
        for permissions in roles.values_list("role__permissions", flat=True):
            granted.update(permissions)
        if space is None:
            granted &= SYSTEM_PERMISSIONS
        cache[key] = frozenset(granted)
    return cache[key]


def forget_permissions(user: User) -> None:
    user.__dict__.pop(_CACHE_ATTR, None)


def has_permission(user: User, permission: Permission, *, space: Space | None = None) -> bool:
    if permission in SYSTEM_PERMISSIONS:
        return permission in permissions_of(user, None)
    if space is None:
        raise ValueError(f"{permission} is a space permission: say which space")
    return permission in permissions_of(user, space)


def require_permission(user: User, permission: Permission, *, space: Space | None = None) -> None:
    if not has_permission(user, permission, space=space):
        where = f" in {space.name}" if space else ""
        raise PermissionDenied(f"You need the {permission} permission{where}.")


def spaces_visible_to(user: User) -> QuerySet[Space]:
    """Spaces in which the user holds any permission at all."""
    if not user.is_authenticated or not user.is_active:
        return Space.objects.none()
    if user.is_superuser:
        return Space.objects.all()
    teams = teams_of(user)
    if ScopedUserRole.objects.filter(team__in=teams, space__isnull=True, team__space__isnull=True).exists():
        return Space.objects.all()
    return Space.objects.filter(Q(scoped_roles__team__in=teams)).distinct()


def get_space_for_user(user: User, space_id: str) -> Space:
    """The space named by an Octopus id, or 404 if it does not exist or the user may not see it."""
    pk = Space.pk_from_octopus_id(space_id)
    space = spaces_visible_to(user).filter(pk=pk).first() if pk else None
    if space is None:
        raise Http404("No such space.")
    return space


def may_use(user: User, obj, codename: str) -> bool:
    """Object-level grants (django-guardian), e.g. which teams may run steps on a worker pool.

    An object nobody has been granted `codename` on is open to everyone who may otherwise act on it;
    once any team holds a grant, only members of granted teams may.
    """
    if user.is_superuser:
        return True
    granted_groups = get_groups_with_perms(obj, only_with_perms_in=[codename])
    if not granted_groups.exists():
        return True
    return user.is_active and granted_groups.filter(Q(team__members=user) | Q(team__includes_everyone=True)).exists()
