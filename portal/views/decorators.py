from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required

from portal.permissions import Permission
from portal.services.access import get_space_for_user, has_permission, require_permission


def space_page(permission: Permission | None = None):
    """A page under /<Spaces-N>/: 404 for a space the user may not see, 403 without `permission`."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, space_id: str, *args, **kwargs):
            space = get_space_for_user(request.user, space_id)
            if permission is not None:
                require_permission(request.user, permission, space=space)
            request.space = space
            return view(request, space, *args, **kwargs)

        return wrapper

    return decorator


def may(request, permission: Permission) -> bool:
    """On a `space_page`: whether the user holds `permission` in the page's space (to show or hide a button)."""
    return has_permission(request.user, permission, space=request.space)
