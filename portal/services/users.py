"""Users: the first administrator, creating and editing users."""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from portal.models import Event, User
from portal.services.audit import differences, record_event, snapshot
from portal.services.teams import ensure_built_in_teams

_AUDITED = ["username", "display_name", "email", "is_active", "is_service"]


@transaction.atomic
def create_user(
    *,
    actor: User | None,
    username: str,
    password: str | None,
    display_name: str = "",
    email: str = "",
    is_service: bool = False,
    administrator: bool = False,
) -> User:
    username = username.strip()
    if not username:
        raise ValidationError({"username": "A user needs a username."})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"A user named {username!r} already exists."})
    user = User(username=username, display_name=display_name, email=email, is_service=is_service)
    if password and not is_service:
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password": error.messages}) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    if administrator:
        admins = ensure_built_in_teams()
        admins.members.add(user)
        admins.group.user_set.add(user)
    record_event(
        actor=actor, category=Event.Category.CREATED, document=user, changes=differences({}, snapshot(user, _AUDITED))
    )
    return user


def ensure_first_administrator(*, username: str | None, password: str | None) -> tuple[User | None, str | None]:
    """Create the first administrator when there is none.

    Returns (user, generated_password): the password is returned only when it was generated here, so
    the caller can print it once. Returns (None, None) when an administrator already exists.
    """
    admins = ensure_built_in_teams()
    if (
        admins.members.filter(is_active=True).exists()
        or User.objects.filter(is_superuser=True, is_active=True).exists()
    ):
        return None, None
    generated = None
    if not password:
        generated = password = _random_password()
    user = create_user(
        actor=None, username=username or "admin", password=password, display_name="Administrator", administrator=True
    )
    user.is_staff = user.is_superuser = True  # the Django admin is for system administrators
    user.save(update_fields=["is_staff", "is_superuser"])
    return user, generated


def _random_password() -> str:
    return secrets.token_urlsafe(15)


@transaction.atomic
def update_user(
    *, actor: User, user: User, display_name: str | None = None, email: str | None = None, is_active: bool | None = None
) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    before = snapshot(user, _AUDITED)
    if display_name is not None:
        user.display_name = display_name
    if email is not None:
        user.email = email
    if is_active is not None:
        if not is_active and user.pk == actor.pk:
            raise ValidationError({"is_active": "You cannot deactivate yourself."})
        user.is_active = is_active
    user.save()
    changes = differences(before, snapshot(user, _AUDITED))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=user, changes=changes)
    return user
