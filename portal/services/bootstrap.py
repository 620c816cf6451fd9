"""What must always exist: the Default space, the built-in roles and teams. Idempotent."""

from portal.services.spaces import ensure_default_space
from portal.services.teams import ensure_built_in_teams


def ensure_built_ins(**kwargs) -> None:
    ensure_built_in_teams()
    ensure_default_space()
