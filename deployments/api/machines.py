"""`/api/{spaceId}/machines`: Octopus's DeploymentTargetResource for Reef's deployment targets (roles and
environments that steps run on behalf of, on workers), written through deployments.services.catalog."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.models import DeploymentTarget, Environment
from deployments.services import catalog
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.api.base import SpaceScopedSerializer, StrictSerializer
from portal.permissions import Permission as P

# Octopus calls an agentless cloud-region target's communication style "None".
_STYLES = {
    "None": DeploymentTarget.Kind.CLOUD_REGION,
    "TentaclePassive": DeploymentTarget.Kind.LISTENING,
    "TentacleActive": DeploymentTarget.Kind.POLLING,
}
_STYLE_OF = {kind: style for style, kind in _STYLES.items()}


class MachineSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/machines/{id}"

    Name = serializers.CharField(source="name")
    Roles = serializers.ListField(source="roles", child=serializers.CharField())
    IsDisabled = serializers.BooleanField(source="is_disabled")
    EnvironmentIds = serializers.SerializerMethodField()
    Endpoint = serializers.SerializerMethodField()
    HealthStatus = serializers.SerializerMethodField()
    TenantedDeploymentParticipation = serializers.SerializerMethodField()
    TenantIds = serializers.SerializerMethodField()
    TenantTags = serializers.SerializerMethodField()

    class Meta:
        model = DeploymentTarget
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Roles",
            "EnvironmentIds",
            "IsDisabled",
            "Endpoint",
            "HealthStatus",
            "TenantedDeploymentParticipation",
            "TenantIds",
            "TenantTags",
            "Links",
        ]

    def get_EnvironmentIds(self, obj) -> list[str]:  # noqa: N802
        return [e.octopus_id for e in obj.environments.all()]

    def get_Endpoint(self, obj) -> dict:  # noqa: N802
        return {
            "CommunicationStyle": _STYLE_OF.get(obj.kind, "None"),
            "Uri": obj.uri or None,
            "Thumbprint": obj.thumbprint or None,
        }

    def get_HealthStatus(self, obj) -> str:  # noqa: N802
        return "Unknown"  # Reef does not health-check targets: steps run on workers on their behalf

    def get_TenantedDeploymentParticipation(self, obj) -> str:  # noqa: N802
        return "Untenanted"

    def get_TenantIds(self, obj) -> list[str]:  # noqa: N802
        return []

    def get_TenantTags(self, obj) -> list[str]:  # noqa: N802
        return []


class MachineEndpointSerializer(StrictSerializer):
    CommunicationStyle = serializers.ChoiceField(choices=list(_STYLES))
    Uri = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=300)
    Thumbprint = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=100)


class MachineWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=500)
    Roles = serializers.ListField(child=serializers.CharField(max_length=200), max_length=100)
    EnvironmentIds = serializers.ListField(child=serializers.CharField(), max_length=500)
    IsDisabled = serializers.BooleanField(required=False, default=False)
    Endpoint = MachineEndpointSerializer()


class MachineViewSet(SpaceScopedViewSet):
    """`?roles=`, `?environmentIds=`, `?isDisabled=` filter, as Octopus's do."""

    serializer_class = MachineSerializer
    item_type = "DeploymentTarget"
    view_permission, edit_permission, model = P.ENVIRONMENT_VIEW, P.ENVIRONMENT_EDIT, DeploymentTarget

    def scoped_queryset(self, space):
        targets = DeploymentTarget.objects.filter(space=space).prefetch_related("environments")
        params = self.request.query_params
        if params.get("environmentIds"):
            pks = [Environment.pk_from_octopus_id(i.strip()) or 0 for i in params["environmentIds"].split(",")]
            targets = targets.filter(environments__in=pks).distinct()
        if params.get("roles"):
            wanted = {r.strip() for r in params["roles"].split(",") if r.strip()}
            targets = targets.filter(pk__in=[t.pk for t in targets if wanted & set(t.roles or [])])
        if params.get("isDisabled") not in (None, ""):
            flag = params["isDisabled"].lower()
            if flag not in ("true", "false"):
                raise ApiValidationError({"isDisabled": ["Use true or false."]})
            targets = targets.filter(is_disabled=flag == "true")
        return self.filter_ids_and_name(targets)

    def _values(self, space) -> dict:
        d = self._input(MachineWriteSerializer).validated_data
        environments = {e.octopus_id.lower(): e for e in Environment.objects.filter(space=space)}
        missing = [i for i in d["EnvironmentIds"] if i.lower() not in environments]
        if missing:
            raise ApiValidationError({"EnvironmentIds": [f"No environment {', '.join(missing)} in {space.name}."]})
        endpoint = d["Endpoint"]
        return {
            "name": d["Name"],
            "kind": _STYLES[endpoint["CommunicationStyle"]],
            "roles": d["Roles"],
            "environments": [environments[i.lower()] for i in d["EnvironmentIds"]],
            "uri": endpoint.get("Uri") or "",
            "thumbprint": endpoint.get("Thumbprint") or "",
            "is_disabled": d["IsDisabled"],
        }

    @extend_schema(request=MachineWriteSerializer, responses={201: MachineSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        try:
            target = catalog.create_deployment_target(actor=request.user, space=space, **self._values(space))
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(target).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MachineWriteSerializer, responses={200: MachineSerializer})
    def update(self, request, *args, **kwargs):
        space = self.require_edit()
        target = self.get_object()
        try:
            target = catalog.update_deployment_target(actor=request.user, target=target, **self._values(space))
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(target).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        catalog.delete_deployment_target(actor=request.user, target=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
