"""API keys: created with a purpose and optional expiry, shown once, stored hashed, revocable."""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.models import ApiKey, Event, User
from portal.services.audit import record_event

_ALPHABET = string.ascii_uppercase + string.digits
KEY_PREFIX = "API-"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def create_api_key(*, actor: User, user: User, purpose: str, expires: datetime | None = None) -> tuple[ApiKey, str]:
    """Returns the stored key and the key itself; the latter exists nowhere else and must be shown once."""
    purpose = purpose.strip()
    if not purpose:
        raise ValidationError({"purpose": "Say what the key is for."})
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": "The expiry must be in the future."})
    key = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))
    api_key = ApiKey.objects.create(
        user=user, purpose=purpose[:200], key_hash=hash_api_key(key), hint=key[-4:], expires=expires
    )
    record_event(
        actor=actor,
        category=Event.Category.API_KEY_CREATED,
        document=user,
        message=f"API key {purpose!r} (…{api_key.hint}) created for {user.username}",
    )
    return api_key, key


def user_for_api_key(key: str) -> User | None:
    """The active user owning a usable key, or None. Hot path: one indexed query."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    api_key = ApiKey.objects.usable().select_related("user").filter(key_hash=hash_api_key(key)).first()
    if api_key is None or not api_key.user.is_active:
        return None
    now = timezone.now()
    if api_key.last_used is None or (now - api_key.last_used).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used=now)  # at most once a minute per key
    return api_key.user


@transaction.atomic
def revoke_api_key(*, actor: User, api_key: ApiKey) -> ApiKey:
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked__isnull=True).update(revoked=timezone.now())
    api_key.refresh_from_db()
    if updated:
        record_event(
            actor=actor,
            category=Event.Category.API_KEY_REVOKED,
            document=api_key.user,
            message=f"API key {api_key.purpose!r} (…{api_key.hint}) revoked for {api_key.user.username}",
        )
    return api_key
