from portal.permissions import Permission
from portal.services.access import has_permission, spaces_visible_to


def layout(request):
    """The space switcher and which navigation items this user may use."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    space = getattr(request, "space", None)
    visible = list(spaces_visible_to(user))
    if space is None and visible:
        space = next((s for s in visible if s.is_default), visible[0])
    return {
        "current_space": space,
        "visible_spaces": visible,
        "nav": {
            "infrastructure": bool(space) and has_permission(user, Permission.WORKER_VIEW, space=space),
            "projects": bool(space) and has_permission(user, Permission.PROJECT_VIEW, space=space),
            "environments": bool(space) and has_permission(user, Permission.ENVIRONMENT_VIEW, space=space),
            "library": bool(space) and has_permission(user, Permission.FEED_VIEW, space=space),
            "script_console": bool(space) and has_permission(user, Permission.TASK_CREATE, space=space),
            "tasks": bool(space) and has_permission(user, Permission.TASK_VIEW, space=space),
            "configuration": True,
            "admin": user.is_staff,
        },
    }
