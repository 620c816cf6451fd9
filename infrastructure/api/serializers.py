"""Octopus's WorkerPoolResource, WorkerMachineResource, endpoint, MachinePolicyResource and AccountResource."""

from __future__ import annotations

import re

from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from portal.api.base import SpaceScopedSerializer, StrictSerializer

_TIMESPAN_RE = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


def format_timespan(seconds: int) -> str:
    """.NET TimeSpan text, as Octopus writes it: "01:00:00", "1.00:00:00"."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}." if days else "") + f"{hours:02}:{minutes:02}:{secs:02}"


@extend_schema_field(OpenApiTypes.STR)
class TimeSpanField(serializers.Field):
    default_error_messages = {"invalid": "Expected a time span such as 00:05:00 or 1.00:00:00."}

    def to_representation(self, value):
        return format_timespan(value)

    def to_internal_value(self, data):
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        match = _TIMESPAN_RE.match(str(data))
        if not match:
            self.fail("invalid")
        days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        if hours > 23 or minutes > 59 or secs > 59:
            self.fail("invalid")
        return days * 86400 + hours * 3600 + minutes * 60 + secs


class WorkerPoolSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/workerpools/{id}"

    Name = serializers.CharField(source="name")
    Slug = serializers.SerializerMethodField()
    Description = serializers.CharField(source="description")
    IsDefault = serializers.BooleanField(source="is_default")
    SortOrder = serializers.IntegerField(source="sort_order")
    WorkerPoolType = serializers.CharField(source="pool_type")
    WorkerType = serializers.CharField(source="worker_type")
    CanAddWorkers = serializers.BooleanField(source="can_add_workers")

    class Meta:
        model = WorkerPool
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Slug",
            "Description",
            "IsDefault",
            "SortOrder",
            "WorkerPoolType",
            "WorkerType",
            "CanAddWorkers",
            "Links",
        ]

    def get_Slug(self, obj) -> str:  # noqa: N802
        return slugify(obj.name)

    def extra_links(self, obj):
        return {
            "Workers": f"/api/Spaces-{obj.space_id}/workerpools/{obj.octopus_id}/workers{{?skip,take}}",
            "Web": f"/Spaces-{obj.space_id}/infrastructure/workerpools/{obj.pk}/",
        }


class WorkerPoolWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=200)  # the model's length
    Description = serializers.CharField(required=False, allow_blank=True, default="")
    WorkerPoolType = serializers.ChoiceField(
        choices=WorkerPool.PoolType.values, required=False, default=WorkerPool.PoolType.STATIC
    )
    WorkerType = serializers.CharField(required=False, allow_blank=True, default="")
    IsDefault = serializers.BooleanField(required=False, default=False)
    SortOrder = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)


def endpoint_of(worker: Worker) -> dict:
    if worker.communication_style == Worker.CommunicationStyle.SSH:
        return {
            "CommunicationStyle": "Ssh",
            "Id": None,
            "AccountId": worker.account.octopus_id if worker.account_id else None,
            "Host": worker.host,
            "Port": worker.port,
            "Fingerprint": worker.fingerprint,
            "Uri": worker.endpoint_uri,
            "DotNetCorePlatform": None,
        }
    return {
        "CommunicationStyle": worker.communication_style,
        "Id": None,
        "Uri": worker.uri,
        "Thumbprint": worker.thumbprint,
        "TentacleVersionDetails": {
            "Version": worker.capabilities.get("AgentVersion"),
            "UpgradeLocked": False,
            "UpgradeSuggested": False,
            "UpgradeRequired": False,
        },
        "CertificateSignatureAlgorithm": "sha256RSA",
    }


class WorkerSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/workers/{id}"

    Name = serializers.CharField(source="name")
    Thumbprint = serializers.CharField(source="thumbprint")
    Uri = serializers.CharField(source="endpoint_uri")
    IsDisabled = serializers.BooleanField(source="is_disabled")
    MachinePolicyId = serializers.SerializerMethodField()
    HealthStatus = serializers.CharField(source="health_status")
    HasLatestCalamari = serializers.SerializerMethodField()
    StatusSummary = serializers.CharField(source="status_summary")
    IsInProcess = serializers.SerializerMethodField()
    Endpoint = serializers.SerializerMethodField()
    WorkerPoolIds = serializers.SerializerMethodField()
    OperatingSystem = serializers.SerializerMethodField()
    ShellName = serializers.SerializerMethodField()
    ShellVersion = serializers.SerializerMethodField()
    Architecture = serializers.SerializerMethodField()
    LastHealthCheck = serializers.DateTimeField(source="last_health_check")

    class Meta:
        model = Worker
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Thumbprint",
            "Uri",
            "IsDisabled",
            "MachinePolicyId",
            "HealthStatus",
            "HasLatestCalamari",
            "StatusSummary",
            "IsInProcess",
            "Endpoint",
            "WorkerPoolIds",
            "OperatingSystem",
            "ShellName",
            "ShellVersion",
            "Architecture",
            "LastHealthCheck",
            "Links",
        ]

    def get_MachinePolicyId(self, obj) -> str:  # noqa: N802
        return f"MachinePolicies-{obj.machine_policy_id}"

    def get_HasLatestCalamari(self, obj) -> bool:  # noqa: N802
        return True  # Reef runs scripts without Calamari

    def get_IsInProcess(self, obj) -> bool:  # noqa: N802
        return False

    def get_Endpoint(self, obj) -> dict:  # noqa: N802
        return endpoint_of(obj)

    def get_WorkerPoolIds(self, obj) -> list[str]:  # noqa: N802
        return [p.octopus_id for p in obj.worker_pools.all()]

    def get_OperatingSystem(self, obj) -> str:  # noqa: N802
        return obj.capabilities.get("OperatingSystem", "Unknown")

    def get_ShellName(self, obj) -> str:  # noqa: N802
        shells = obj.capabilities.get("Shells") or []
        return shells[0] if shells else "Unknown"

    def get_ShellVersion(self, obj) -> str:  # noqa: N802
        return obj.capabilities.get("ShellVersion", "Unknown")

    def get_Architecture(self, obj) -> str:  # noqa: N802
        return obj.capabilities.get("Architecture", "Unknown")

    def extra_links(self, obj):
        return {
            "Connection": f"/api/Spaces-{obj.space_id}/workers/{obj.octopus_id}/connection",
            "Web": f"/Spaces-{obj.space_id}/infrastructure/workers/{obj.pk}/",
        }


class EndpointWriteSerializer(StrictSerializer):
    CommunicationStyle = serializers.ChoiceField(choices=Worker.CommunicationStyle.values)
    Uri = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    Thumbprint = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    Host = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    Port = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=65535)
    Fingerprint = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    AccountId = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)


class WorkerWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=200)  # the model's length
    WorkerPoolIds = serializers.ListField(child=serializers.CharField(), allow_empty=True)
    MachinePolicyId = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    IsDisabled = serializers.BooleanField(required=False, default=False)
    Endpoint = EndpointWriteSerializer()


class WorkerRegistrationSerializer(serializers.Serializer):
    """An agent registering itself (`register-worker`): Reef's own endpoint, one call and one transaction,
    where Octopus's client finds, deletes and creates in several calls."""

    Name = serializers.CharField(allow_blank=True, max_length=500)
    WorkerPoolIds = serializers.ListField(child=serializers.CharField(), allow_empty=True, max_length=100)
    MachinePolicyId = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    Endpoint = EndpointWriteSerializer()
    Force = serializers.BooleanField(required=False, default=False)


class MachinePolicySerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/machinepolicies/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    IsDefault = serializers.BooleanField(source="is_default")
    MachineHealthCheckPolicy = serializers.SerializerMethodField()
    MachineConnectivityPolicy = serializers.SerializerMethodField()
    MachineCleanupPolicy = serializers.SerializerMethodField()
    ConnectionRetrySleepInterval = TimeSpanField(source="retry_wait")
    ConnectionRetryCountLimit = serializers.IntegerField(source="retry_count")
    ConnectionConnectTimeout = TimeSpanField(source="connect_timeout")
    PollingRequestQueueTimeout = TimeSpanField(source="polling_request_queue_timeout")

    class Meta:
        model = MachinePolicy
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Description",
            "IsDefault",
            "MachineHealthCheckPolicy",
            "MachineConnectivityPolicy",
            "MachineCleanupPolicy",
            "ConnectionRetrySleepInterval",
            "ConnectionRetryCountLimit",
            "ConnectionConnectTimeout",
            "PollingRequestQueueTimeout",
            "Links",
        ]

    def get_MachineHealthCheckPolicy(self, obj) -> dict:  # noqa: N802
        return {
            "HealthCheckInterval": format_timespan(obj.health_check_interval),
            "HealthCheckType": obj.health_check_type,
            "HealthCheckCron": None,
            "HealthCheckCronTimezone": "UTC",
            "HealthCheckScheduleType": "Interval",
            "BashHealthCheckPolicy": {"RunType": "Inline", "ScriptBody": obj.bash_health_check_script},
            "PowerShellHealthCheckPolicy": {"RunType": "Inline", "ScriptBody": ""},
        }

    def get_MachineConnectivityPolicy(self, obj) -> dict:  # noqa: N802
        return {"MachineConnectivityBehavior": obj.connectivity_behavior}

    def get_MachineCleanupPolicy(self, obj) -> dict:  # noqa: N802
        return {
            "DeleteMachinesBehavior": obj.delete_behavior,
            "DeleteMachinesElapsedTimeSpan": format_timespan(obj.delete_after),
        }


class _ScriptPolicyInput(StrictSerializer):
    RunType = serializers.CharField(required=False)
    ScriptBody = serializers.CharField(required=False, allow_blank=True, max_length=100_000)


class _HealthCheckInput(StrictSerializer):
    HealthCheckInterval = TimeSpanField(required=False)
    HealthCheckType = serializers.ChoiceField(choices=MachinePolicy.HealthCheckType.values, required=False)
    BashHealthCheckPolicy = _ScriptPolicyInput(required=False)


class MachinePolicyWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=100)  # the model's length
    Description = serializers.CharField(required=False, allow_blank=True)
    MachineHealthCheckPolicy = _HealthCheckInput(required=False)
    MachineConnectivityPolicy = serializers.DictField(required=False)
    MachineCleanupPolicy = serializers.DictField(required=False)
    ConnectionRetrySleepInterval = TimeSpanField(required=False)
    ConnectionRetryCountLimit = serializers.IntegerField(required=False)
    ConnectionConnectTimeout = TimeSpanField(required=False)
    PollingRequestQueueTimeout = TimeSpanField(required=False)

    def to_service_values(self) -> dict:
        """Octopus's nested shape → the service's flat fields, only for what the request gave."""
        d = self.validated_data
        values: dict = {"name": d["Name"]}
        if "Description" in d:
            values["description"] = d["Description"]
        health = d.get("MachineHealthCheckPolicy") or {}
        if "HealthCheckInterval" in health:
            values["health_check_interval"] = health["HealthCheckInterval"]
        if "HealthCheckType" in health:
            values["health_check_type"] = health["HealthCheckType"]
        if "ScriptBody" in (health.get("BashHealthCheckPolicy") or {}):
            values["bash_health_check_script"] = health["BashHealthCheckPolicy"]["ScriptBody"]
        connectivity = d.get("MachineConnectivityPolicy") or {}
        if "MachineConnectivityBehavior" in connectivity:
            values["connectivity_behavior"] = connectivity["MachineConnectivityBehavior"]
        cleanup = d.get("MachineCleanupPolicy") or {}
        if "DeleteMachinesBehavior" in cleanup:
            values["delete_behavior"] = cleanup["DeleteMachinesBehavior"]
        if "DeleteMachinesElapsedTimeSpan" in cleanup:
            values["delete_after"] = TimeSpanField().run_validation(cleanup["DeleteMachinesElapsedTimeSpan"])
        for api_name, field in [
            ("ConnectionRetrySleepInterval", "retry_wait"),
            ("ConnectionRetryCountLimit", "retry_count"),
            ("ConnectionConnectTimeout", "connect_timeout"),
            ("PollingRequestQueueTimeout", "polling_request_queue_timeout"),
        ]:
            if api_name in d:
                values[field] = d[api_name]
        return values


def _sensitive(token: str) -> dict:
    """Octopus's SensitiveValue: whether a secret is stored, never the secret."""
    return {"HasValue": bool(token), "NewValue": None}


class AccountSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/accounts/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    AccountType = serializers.CharField(source="account_type")
    Username = serializers.CharField(source="username")
    PrivateKeyFile = serializers.SerializerMethodField()
    PrivateKeyPassphrase = serializers.SerializerMethodField()
    Password = serializers.SerializerMethodField()
    EnvironmentIds = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Description",
            "AccountType",
            "Username",
            "PrivateKeyFile",
            "PrivateKeyPassphrase",
            "Password",
            "EnvironmentIds",
            "Links",
        ]

    def get_PrivateKeyFile(self, obj) -> dict:  # noqa: N802
        return _sensitive(obj.private_key_encrypted)

    def get_PrivateKeyPassphrase(self, obj) -> dict:  # noqa: N802
        return _sensitive(obj.passphrase_encrypted)

    def get_Password(self, obj) -> dict:  # noqa: N802
        return _sensitive(obj.password_encrypted)

    def get_EnvironmentIds(self, obj) -> list:  # noqa: N802
        return []


class SensitiveInput(serializers.Serializer):
    HasValue = serializers.BooleanField(required=False)
    NewValue = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=100_000)


class AccountWriteSerializer(serializers.Serializer):
    Name = serializers.CharField(allow_blank=True, max_length=100)  # the model's length
    Description = serializers.CharField(required=False, allow_blank=True, default="")
    AccountType = serializers.ChoiceField(choices=Account.AccountType.values)
    Username = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    PrivateKeyFile = SensitiveInput(required=False)
    PrivateKeyPassphrase = SensitiveInput(required=False)
    Password = SensitiveInput(required=False)
    Token = SensitiveInput(required=False)

    def secret(self, name: str) -> str | None:
        value = self.validated_data.get(name) or {}
        return value.get("NewValue")
