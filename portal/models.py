"""Spaces, users, teams, roles, API keys and audit events."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.utils import timezone


class OctopusIdMixin:
    """Octopus-style string ids ("Spaces-1") over integer primary keys."""

    ID_PREFIX = ""

    @property
    def octopus_id(self) -> str:
        return f"{self.ID_PREFIX}-{self.pk}"

    @classmethod
    def pk_from_octopus_id(cls, value: object) -> int | None:
        """The primary key inside `value`, or None when it is not one of this model's ids."""
        if not isinstance(value, str):
            return None
        prefix, _, number = value.rpartition("-")
        if prefix.lower() != cls.ID_PREFIX.lower() or not number.isdigit() or len(number) > 18:
            return None
        return int(number)


class SpaceQuerySet(models.QuerySet):
    def default(self) -> Space:
        return self.get(is_default=True)


class Space(OctopusIdMixin, models.Model):
    ID_PREFIX = "Spaces"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    task_queue_stopped = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    objects = SpaceQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_space"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class User(OctopusIdMixin, AbstractUser):
    ID_PREFIX = "Users"

    display_name = models.CharField(max_length=200, blank=True)
    is_service = models.BooleanField(default=False, help_text="A service account: API keys only, no password login.")

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.display_name or self.username


class UserRole(OctopusIdMixin, models.Model):
    """A named set of permissions (Octopus's user roles). Built-in roles cannot be edited."""

    ID_PREFIX = "userroles"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    permissions = models.JSONField(default=list)
    is_built_in = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(OctopusIdMixin, models.Model):
    """Users who share roles. A team with no space is a system team: its roles may apply everywhere.

    Each team owns a Django group so django-guardian object grants made to the team reach its members.
    """

    ID_PREFIX = "Teams"

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    space = models.ForeignKey(Space, null=True, blank=True, on_delete=models.CASCADE, related_name="teams")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    is_built_in = models.BooleanField(default=False)
    # The "Everyone" team: every active user is a member without being listed.
    includes_everyone = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["name", "space"], name="team_name_unique_in_space"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(space__isnull=True), name="system_team_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ScopedUserRole(OctopusIdMixin, models.Model):
    """A role granted to a team, in one space or (space empty, system teams only) at system level."""

    ID_PREFIX = "ScopedUserRoles"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="scoped_roles")
    role = models.ForeignKey(UserRole, on_delete=models.PROTECT, related_name="scoped_roles")
    space = models.ForeignKey(Space, null=True, blank=True, on_delete=models.CASCADE, related_name="scoped_roles")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "role", "space"], name="scoped_role_unique"),
            models.UniqueConstraint(
                fields=["team", "role"], condition=models.Q(space__isnull=True), name="system_scoped_role_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team} → {self.role} ({self.space or 'system'})"


class ApiKeyQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked__isnull=True).filter(models.Q(expires__isnull=True) | models.Q(expires__gt=now))


class ApiKey(models.Model):
    """An API key: shown once, stored as a SHA-256 hash (keys are random, so no slow hash is needed)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    purpose = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="The key's last characters, to tell keys apart.")
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.purpose} (…{self.hint})"

    @property
    def octopus_id(self) -> str:
        return f"apikeys-{self.pk}"

    @property
    def is_usable(self) -> bool:
        return self.revoked is None and (self.expires is None or self.expires > timezone.now())


class Event(OctopusIdMixin, models.Model):
    """One audit entry: who changed what, when, and how."""

    ID_PREFIX = "Events"

    class Category(models.TextChoices):
        CREATED = "Created"
        MODIFIED = "Modified"
        DELETED = "Deleted"
        API_KEY_CREATED = "ApiKeyCreated"
        API_KEY_REVOKED = "ApiKeyRevoked"
        LOGIN = "Login"
        LOGIN_FAILED = "LoginFailed"
        MACHINE_HEALTHY = "MachineHealthy"
        MACHINE_UNAVAILABLE = "MachineUnavailable"

    occurred = models.DateTimeField(default=timezone.now, db_index=True)
    space = models.ForeignKey(Space, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    category = models.CharField(max_length=40, choices=Category.choices, db_index=True)
    document_type = models.CharField(max_length=60, blank=True, db_index=True)
    document_id = models.CharField(max_length=60, blank=True, db_index=True)
    document_name = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred", "-id"]
        indexes = [models.Index(fields=["space", "-occurred"])]

    def __str__(self) -> str:
        return self.message
