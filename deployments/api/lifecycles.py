"""`/api/{spaceId}/projectgroups|lifecycles|channels`: Octopus's ProjectGroupResource, LifecycleResource (with its
Phases) and ChannelResource, read and written through deployments.services.lifecycles."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api.resources import ProjectSerializer
from deployments.models import Channel, Environment, Lifecycle, Project, ProjectGroup
from deployments.services import lifecycles
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.api.base import SpaceScopedSerializer, StrictSerializer
from portal.permissions import Permission as P

KEEP_FOREVER = {"QuantityToKeep": 0, "ShouldKeepForever": True, "Unit": "Days"}


def _find(model, space, octopus_id, field: str, **scope):
    """The space's object with that id (None for a blank id), or a 400 naming the field."""
    if octopus_id in (None, ""):
        return None
    found = model.objects.filter(pk=model.pk_from_octopus_id(octopus_id) or 0, **scope).first()
    if found is None or found.space_id != space.pk:
        raise ApiValidationError({field: [f"No {model.__name__} {octopus_id!r} in {space.name}."]})
    return found


# Project groups ------------------------------------------------------------------------------------------


class ProjectGroupSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/projectgroups/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    EnvironmentIds = serializers.SerializerMethodField()
    RetentionPolicyId = serializers.SerializerMethodField()

    class Meta:
        model = ProjectGroup
        fields = ["Id", "SpaceId", "Name", "Description", "EnvironmentIds", "RetentionPolicyId", "Links"]

    def get_EnvironmentIds(self, obj) -> list[str]:  # noqa: N802
        return []

    def get_RetentionPolicyId(self, obj) -> str | None:  # noqa: N802
        return None

    def extra_links(self, obj):
        return {"Projects": f"/api/Spaces-{obj.space_id}/projectgroups/{obj.octopus_id}/projects{{?skip,take}}"}


class NamedWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=500)
    Description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")


class ProjectGroupViewSet(SpaceScopedViewSet):
    serializer_class = ProjectGroupSerializer
    item_type = "ProjectGroup"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROJECT_EDIT, ProjectGroup

    def scoped_queryset(self, space):
        lifecycles.default_project_group(space)
        return self.filter_ids_and_name(ProjectGroup.objects.filter(space=space))

    def _save(self, group):
        space = self.require_edit()
        d = self._input(NamedWriteSerializer).validated_data
        try:
            return lifecycles.save_project_group(
                actor=self.request.user,
                space=space,
                name=d["Name"],
                description=d.get("Description") or "",
                group=group,
            )
        except ValidationError as error:
            _reraise_for_api(error)

    @extend_schema(request=NamedWriteSerializer, responses={201: ProjectGroupSerializer})
    def create(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(None)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NamedWriteSerializer, responses={200: ProjectGroupSerializer})
    def update(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(self.get_object())).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            lifecycles.delete_project_group(actor=request.user, group=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: ProjectSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def projects(self, request, *args, **kwargs):
        group = self.get_object()
        self.item_type = "Project"
        page = self.paginate_queryset(Project.objects.filter(project_group=group))
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)


# Lifecycles --------------------------------------------------------------------------------------------


class LifecycleSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/lifecycles/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    Phases = serializers.SerializerMethodField()
    ReleaseRetentionPolicy = serializers.SerializerMethodField()
    TentacleRetentionPolicy = serializers.SerializerMethodField()

    class Meta:
        model = Lifecycle
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Description",
            "Phases",
            "ReleaseRetentionPolicy",
            "TentacleRetentionPolicy",
            "Links",
        ]

    def get_Phases(self, obj) -> list[dict]:  # noqa: N802
        """The phases as defined; a lifecycle without phases of its own (the Default Lifecycle) shows the one phase per
        environment, in order, that it applies. Sending those back unchanged keeps it following the environments."""
        if not obj.phases.exists():
            return [
                {
                    "Id": f"Phases-implicit-{e.octopus_id}",
                    "Name": e.name,
                    "AutomaticDeploymentTargets": [],
                    "OptionalDeploymentTargets": [e.octopus_id],
                    "MinimumEnvironmentsBeforePromotion": 0,
                    "IsOptionalPhase": False,
                    "ReleaseRetentionPolicy": None,
                    "TentacleRetentionPolicy": None,
                }
                for e in Environment.objects.filter(space=obj.space_id)
            ]
        return [
            {
                "Id": phase.octopus_id,
                "Name": phase.name,
                "AutomaticDeploymentTargets": [e.octopus_id for e in phase.automatic_environments.all()],
                "OptionalDeploymentTargets": [e.octopus_id for e in phase.optional_environments.all()],
                "MinimumEnvironmentsBeforePromotion": phase.minimum_environments_before_promotion,
                "IsOptionalPhase": phase.is_optional_phase,
                "ReleaseRetentionPolicy": None,
                "TentacleRetentionPolicy": None,
            }
            for phase in obj.phases.prefetch_related("automatic_environments", "optional_environments")
        ]

    def get_ReleaseRetentionPolicy(self, obj) -> dict:  # noqa: N802
        return KEEP_FOREVER

    def get_TentacleRetentionPolicy(self, obj) -> dict:  # noqa: N802
        return KEEP_FOREVER

    def extra_links(self, obj):
        return {"Preview": f"/api/Spaces-{obj.space_id}/lifecycles/{obj.octopus_id}/preview"}


class PhaseWriteSerializer(StrictSerializer):
    Id = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    Name = serializers.CharField(allow_blank=True, max_length=500)
    AutomaticDeploymentTargets = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=500
    )
    OptionalDeploymentTargets = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=500
    )
    MinimumEnvironmentsBeforePromotion = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=10_000
    )
    IsOptionalPhase = serializers.BooleanField(required=False, default=False)


class LifecycleWriteSerializer(NamedWriteSerializer):
    Phases = PhaseWriteSerializer(many=True, required=False, default=list)


class LifecycleViewSet(SpaceScopedViewSet):
    serializer_class = LifecycleSerializer
    item_type = "Lifecycle"
    view_permission, edit_permission, model = P.ENVIRONMENT_VIEW, P.ENVIRONMENT_EDIT, Lifecycle

    def scoped_queryset(self, space):
        lifecycles.default_lifecycle(space)
        return self.filter_ids_and_name(Lifecycle.objects.filter(space=space))

    def _save(self, lifecycle):
        space = self.require_edit()
        d = self._input(LifecycleWriteSerializer).validated_data
        environments = {e.octopus_id.lower(): e for e in Environment.objects.filter(space=space)}
        errors, phases = {}, []
        for i, phase in enumerate(d["Phases"]):
            chosen = {}
            for key in ("AutomaticDeploymentTargets", "OptionalDeploymentTargets"):
                missing = [x for x in phase[key] if x.lower() not in environments]
                if missing:
                    errors[f"Phases[{i}].{key}"] = [f"No environment {', '.join(missing)} in {space.name}."]
                chosen[key] = [environments[x.lower()] for x in phase[key] if x.lower() in environments]
            phases.append(
                lifecycles.PhaseSpec(
                    name=phase["Name"],
                    automatic_environments=chosen["AutomaticDeploymentTargets"],
                    optional_environments=chosen["OptionalDeploymentTargets"],
                    minimum_environments_before_promotion=phase["MinimumEnvironmentsBeforePromotion"],
                    is_optional_phase=phase["IsOptionalPhase"],
                )
            )
        if errors:
            raise ApiValidationError(errors)
        if lifecycles.is_implicit(space, phases):
            phases = []  # every environment in order: stored as no phases, so new environments join it
        try:
            return lifecycles.save_lifecycle(
                actor=self.request.user,
                space=space,
                name=d["Name"],
                description=d.get("Description") or "",
                phases=phases,
                lifecycle=lifecycle,
            )
        except ValidationError as error:
            _reraise_for_api(error)

    @extend_schema(request=LifecycleWriteSerializer, responses={201: LifecycleSerializer})
    def create(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(None)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LifecycleWriteSerializer, responses={200: LifecycleSerializer})
    def update(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(self.get_object())).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            lifecycles.delete_lifecycle(actor=request.user, lifecycle=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], pagination_class=None)
    def preview(self, request, *args, **kwargs):
        """The phases as they apply, with their environments: a lifecycle without phases shows one per environment."""
        lifecycle = self.get_object()
        names = {e.pk: e for e in Environment.objects.filter(space=lifecycle.space_id)}
        return Response(
            {
                **self.get_serializer(lifecycle).data,
                "Phases": [
                    {
                        "Name": phase.name,
                        "AutomaticDeploymentTargets": [
                            names[pk].octopus_id for pk in phase.automatic_ids if pk in names
                        ],
                        "OptionalDeploymentTargets": [
                            names[pk].octopus_id
                            for pk in phase.environment_ids
                            if pk in names and pk not in phase.automatic_ids
                        ],
                        "MinimumEnvironmentsBeforePromotion": phase.minimum,
                        "IsOptionalPhase": phase.is_optional,
                    }
                    for phase in lifecycles.effective_phases(lifecycle)
                ],
            }
        )


# Channels ------------------------------------------------------------------------------------------------


class ChannelSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/channels/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    ProjectId = serializers.SerializerMethodField()
    LifecycleId = serializers.SerializerMethodField()
    IsDefault = serializers.BooleanField(source="is_default")
    Rules = serializers.SerializerMethodField()
    TenantTags = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "Id",
            "SpaceId",
            "ProjectId",
            "Name",
            "Description",
            "LifecycleId",
            "IsDefault",
            "Rules",
            "TenantTags",
            "Links",
        ]

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return f"Projects-{obj.project_id}"

    def get_LifecycleId(self, obj) -> str | None:  # noqa: N802
        return f"Lifecycles-{obj.lifecycle_id}" if obj.lifecycle_id else None

    def get_Rules(self, obj) -> list[dict]:  # noqa: N802
        return []

    def get_TenantTags(self, obj) -> list[str]:  # noqa: N802
        return []


class ChannelWriteSerializer(NamedWriteSerializer):
    ProjectId = serializers.CharField()
    LifecycleId = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    IsDefault = serializers.BooleanField(required=False, default=False)
    Rules = serializers.ListField(child=serializers.DictField(), required=False, max_length=100)
    TenantTags = serializers.ListField(child=serializers.CharField(), required=False, max_length=100)

    def validate_Rules(self, value):  # noqa: N802
        if value:
            raise serializers.ValidationError("Reef's channels have no version rules yet: send an empty list.")
        return value

    def validate_TenantTags(self, value):  # noqa: N802
        if value:
            raise serializers.ValidationError("Reef has no tenants.")
        return value


class ChannelViewSet(SpaceScopedViewSet):
    serializer_class = ChannelSerializer
    item_type = "Channel"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROJECT_EDIT, Channel

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Channel.objects.filter(project__space=space).select_related("project"))

    def _save(self, channel):
        space = self.require_edit()
        d = self._input(ChannelWriteSerializer).validated_data
        project = _find(Project, space, d["ProjectId"], "ProjectId")
        if project is None:
            raise ApiValidationError({"ProjectId": ["Name the channel's project."]})
        if channel is not None and channel.project_id != project.pk:
            raise ApiValidationError({"ProjectId": ["A channel cannot move to another project."]})
        lifecycle = _find(Lifecycle, space, d.get("LifecycleId"), "LifecycleId")
        try:
            return lifecycles.save_channel(
                actor=self.request.user,
                project=project,
                name=d["Name"],
                description=d.get("Description") or "",
                lifecycle=lifecycle,
                is_default=d["IsDefault"],
                channel=channel,
            )
        except ValidationError as error:
            _reraise_for_api(error)

    @extend_schema(request=ChannelWriteSerializer, responses={201: ChannelSerializer})
    def create(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(None)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ChannelWriteSerializer, responses={200: ChannelSerializer})
    def update(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(self.get_object())).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            lifecycles.delete_channel(actor=request.user, channel=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)
