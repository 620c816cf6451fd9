"""Worker pools, workers, machine policies, accounts and the server certificate."""

from __future__ import annotations

import re

from django.db import models
from django.utils import timezone

from portal.models import OctopusIdMixin, Space

THUMBPRINT_RE = re.compile(r"^[0-9A-F]{40}$")
SUBSCRIPTION_URI_RE = re.compile(r"^poll://([a-z0-9]{1,64})/$")


class MachinePolicy(OctopusIdMixin, models.Model):
    """How often workers are health-checked, with what script, and how patient the server is with them."""

    ID_PREFIX = "MachinePolicies"

    class HealthCheckType(models.TextChoices):
        RUN_SCRIPT = "RunScript", "Run health check scripts"
        ONLY_CONNECTIVITY = "OnlyConnectivity", "Only perform connection test"

    class ConnectivityBehavior(models.TextChoices):
        EXPECTED_TO_BE_ONLINE = "ExpectedToBeOnline", "Unavailable machines are unhealthy"
        MAY_BE_OFFLINE = "MayBeOfflineAndCanBeSkipped", "Unavailable machines may be skipped"

    class DeleteBehavior(models.TextChoices):
        DO_NOT_DELETE = "DoNotDelete", "Do not delete unavailable machines"
        DELETE_UNAVAILABLE = "DeleteUnavailableMachines", "Delete machines unavailable for longer than"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="machine_policies")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    health_check_interval = models.PositiveIntegerField(default=3600, help_text="seconds between health checks")
    health_check_type = models.CharField(
        max_length=20, choices=HealthCheckType.choices, default=HealthCheckType.RUN_SCRIPT
    )
    bash_health_check_script = models.TextField(blank=True, default="")
    connect_timeout = models.PositiveIntegerField(default=60, help_text="seconds")
    retry_count = models.PositiveIntegerField(default=5)
    retry_wait = models.PositiveIntegerField(default=1, help_text="seconds between connection retries")
    polling_request_queue_timeout = models.PositiveIntegerField(default=120, help_text="seconds")
    connectivity_behavior = models.CharField(
        max_length=40, choices=ConnectivityBehavior.choices, default=ConnectivityBehavior.EXPECTED_TO_BE_ONLINE
    )
    delete_behavior = models.CharField(
        max_length=40, choices=DeleteBehavior.choices, default=DeleteBehavior.DO_NOT_DELETE
    )
    delete_after = models.PositiveIntegerField(default=24 * 3600, help_text="seconds unavailable before deletion")

    class Meta:
        ordering = ["-is_default", "name"]
        verbose_name_plural = "machine policies"
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="machine_policy_name_unique_in_space"),
            models.UniqueConstraint(
                fields=["space"], condition=models.Q(is_default=True), name="one_default_machine_policy"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Account(OctopusIdMixin, models.Model):
    """Credentials for SSH workers. Secrets are encrypted at rest and never shown after saving."""

    ID_PREFIX = "Accounts"

    class AccountType(models.TextChoices):
        SSH_KEY_PAIR = "SshKeyPair", "SSH key pair"
        USERNAME_PASSWORD = "UsernamePassword", "Username/password"
        TOKEN = "Token", "Token"

    SSH_TYPES = (AccountType.SSH_KEY_PAIR, AccountType.USERNAME_PASSWORD)

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="accounts")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    account_type = models.CharField(max_length=30, choices=AccountType.choices)
    username = models.CharField(max_length=100, blank=True)
    private_key_encrypted = models.TextField(blank=True, default="")
    passphrase_encrypted = models.TextField(blank=True, default="")
    password_encrypted = models.TextField(blank=True, default="", help_text="a password or a token")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="account_name_unique_in_space")]

    def __str__(self) -> str:
        return self.name


class WorkerPool(OctopusIdMixin, models.Model):
    ID_PREFIX = "WorkerPools"

    class PoolType(models.TextChoices):
        STATIC = "StaticWorkerPool", "Static"
        DYNAMIC = "DynamicWorkerPool", "Dynamic"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="worker_pools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    sort_order = models.IntegerField(default=0)
    is_default = models.BooleanField(default=False)
    pool_type = models.CharField(max_length=30, choices=PoolType.choices, default=PoolType.STATIC)
    worker_type = models.CharField(max_length=100, blank=True, help_text="dynamic pools: the kind of worker leased")

    class Meta:
        ordering = ["sort_order", "name"]
        permissions = [("use_workerpool", "Run steps on this worker pool")]
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="worker_pool_name_unique_in_space"),
            models.UniqueConstraint(
                fields=["space"], condition=models.Q(is_default=True), name="one_default_worker_pool"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def can_add_workers(self) -> bool:
        return self.pool_type == self.PoolType.STATIC


class Worker(OctopusIdMixin, models.Model):
    ID_PREFIX = "Workers"

    class CommunicationStyle(models.TextChoices):
        LISTENING = "TentaclePassive", "Listening Tentacle"
        POLLING = "TentacleActive", "Polling Tentacle"
        SSH = "Ssh", "SSH connection"

    class HealthStatus(models.TextChoices):
        HEALTHY = "Healthy"
        HAS_WARNINGS = "HasWarnings", "Has warnings"
        UNHEALTHY = "Unhealthy"
        UNAVAILABLE = "Unavailable"
        UNKNOWN = "Unknown"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="workers")
    name = models.CharField(max_length=200)
    worker_pools = models.ManyToManyField(WorkerPool, related_name="workers")
    communication_style = models.CharField(max_length=20, choices=CommunicationStyle.choices)
    # Tentacles: https://host:10933/ or poll://subscription/, and the agent's certificate thumbprint.
    uri = models.CharField(max_length=300, blank=True)
    thumbprint = models.CharField(max_length=40, blank=True, db_index=True)
    # SSH
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    fingerprint = models.CharField(max_length=200, blank=True, help_text="the SSH host key fingerprint (SHA256:…)")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="workers")

    machine_policy = models.ForeignKey(MachinePolicy, on_delete=models.PROTECT, related_name="workers")
    is_disabled = models.BooleanField(default=False)
    health_status = models.CharField(
        max_length=20, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN, db_index=True
    )
    status_summary = models.TextField(blank=True, default="This worker has not been health-checked yet.")
    last_health_check = models.DateTimeField(null=True, blank=True)
    # Claimed by compare-and-set when a check is due, so one check runs however many sweeps overlap.
    next_health_check = models.DateTimeField(null=True, blank=True, db_index=True)
    unavailable_since = models.DateTimeField(null=True, blank=True)
    # When the check (or liveness observation) behind the current status started: an older result never overwrites it.
    health_check_started = models.DateTimeField(null=True, blank=True)
    # Quick re-checks after the worker was found unreachable (5 s, 15 s, 60 s, … up to the policy's interval).
    recheck_attempt = models.PositiveIntegerField(default=0)
    health_check_log = models.TextField(blank=True, default="")
    capabilities = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="worker_name_unique_in_space"),
            models.UniqueConstraint(
                fields=["uri"],
                condition=models.Q(communication_style="TentacleActive"),
                name="polling_subscription_unique",
            ),
        ]
        indexes = [models.Index(fields=["space", "health_status"])]

    def __str__(self) -> str:
        return self.name

    @property
    def subscription_id(self) -> str | None:
        match = SUBSCRIPTION_URI_RE.match(self.uri or "")
        return match.group(1) if match and self.communication_style == self.CommunicationStyle.POLLING else None

    @property
    def endpoint_uri(self) -> str:
        if self.communication_style == self.CommunicationStyle.SSH:
            return f"ssh://{self.host}:{self.port or 22}/"
        return self.uri

    def is_available(self) -> bool:
        """May run steps: enabled and healthy (warnings included), as Octopus selects workers."""
        return not self.is_disabled and self.health_status in (
            self.HealthStatus.HEALTHY,
            self.HealthStatus.HAS_WARNINGS,
        )


class ServerCertificate(models.Model):
    """The server's own certificate: agents pin its thumbprint. One is current; rotation makes a new one."""

    thumbprint = models.CharField(max_length=40, unique=True)
    certificate_pem = models.TextField()
    private_key_encrypted = models.TextField()
    created = models.DateTimeField(default=timezone.now)
    is_current = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"], condition=models.Q(is_current=True), name="one_current_server_certificate"
            )
        ]

    def __str__(self) -> str:
        return self.thumbprint
