"""Octopus's EnvironmentResource, ProjectResource, DeploymentProcessResource, ReleaseResource,
DeploymentResource and RunbookRunResource."""

from __future__ import annotations

from rest_framework import serializers

from deployments.models import Deployment, Environment, Project, Release, RunbookRun
from deployments.services.lifecycles import default_project_group, lifecycle_of_project
from portal.api.base import SpaceScopedSerializer, StrictSerializer


class EnvironmentSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/environments/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    SortOrder = serializers.IntegerField(source="sort_order")
    UseGuidedFailure = serializers.BooleanField(source="use_guided_failure", read_only=True)
    AllowDynamicInfrastructure = serializers.SerializerMethodField()
    ExtensionSettings = serializers.SerializerMethodField()

    class Meta:
        model = Environment
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Description",
            "SortOrder",
            "UseGuidedFailure",
            "AllowDynamicInfrastructure",
            "ExtensionSettings",
            "Links",
        ]

    def get_AllowDynamicInfrastructure(self, obj) -> bool:  # noqa: N802
        return False

    def get_ExtensionSettings(self, obj) -> list[dict]:  # noqa: N802
        return []


class EnvironmentWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=500)
    Description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    SortOrder = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)
    UseGuidedFailure = serializers.BooleanField(required=False)
    AllowDynamicInfrastructure = serializers.BooleanField(required=False)

    def validate_AllowDynamicInfrastructure(self, value):  # noqa: N802
        if value:
            raise serializers.ValidationError("Reef has no dynamic infrastructure.")
        return value


class ProjectSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/projects/{id}"

    Name = serializers.CharField(source="name")
    Slug = serializers.CharField(source="slug")
    Description = serializers.CharField(source="description")
    IsDisabled = serializers.BooleanField(source="is_disabled")
    ProjectGroupId = serializers.SerializerMethodField()
    LifecycleId = serializers.SerializerMethodField()
    VariableSetId = serializers.SerializerMethodField()
    DeploymentProcessId = serializers.SerializerMethodField()
    IncludedLibraryVariableSetIds = serializers.SerializerMethodField()
    TenantedDeploymentMode = serializers.SerializerMethodField()
    IsVersionControlled = serializers.SerializerMethodField()
    PersistenceSettings = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Slug",
            "Description",
            "IsDisabled",
            "ProjectGroupId",
            "LifecycleId",
            "VariableSetId",
            "DeploymentProcessId",
            "IncludedLibraryVariableSetIds",
            "TenantedDeploymentMode",
            "IsVersionControlled",
            "PersistenceSettings",
            "Links",
        ]

    def get_ProjectGroupId(self, obj) -> str:  # noqa: N802
        return (
            f"ProjectGroups-{obj.project_group_id}"
            if obj.project_group_id
            else default_project_group(obj.space).octopus_id
        )

    def get_LifecycleId(self, obj) -> str:  # noqa: N802
        return f"Lifecycles-{obj.lifecycle_id}" if obj.lifecycle_id else lifecycle_of_project(obj).octopus_id

    def get_VariableSetId(self, obj) -> str:  # noqa: N802
        return f"variableset-{obj.octopus_id}"

    def get_DeploymentProcessId(self, obj) -> str:  # noqa: N802
        return f"deploymentprocess-{obj.octopus_id}"

    def get_IncludedLibraryVariableSetIds(self, obj) -> list[str]:  # noqa: N802
        return []

    def get_TenantedDeploymentMode(self, obj) -> str:  # noqa: N802
        return "Untenanted"

    def get_IsVersionControlled(self, obj) -> bool:  # noqa: N802
        return False

    def get_PersistenceSettings(self, obj) -> dict[str, str]:  # noqa: N802
        return {"Type": "Database"}

    def extra_links(self, obj):
        base = f"/api/Spaces-{obj.space_id}/projects/{obj.octopus_id}"
        return {
            "DeploymentProcess": f"{base}/deploymentprocesses",
            "Releases": f"{base}/releases{{/version}}{{?skip,take,searchByVersion}}",
            "Channels": f"{base}/channels",
            "Runbooks": f"{base}/runbooks",
            "Variables": f"/api/Spaces-{obj.space_id}/variables/variableset-{obj.octopus_id}",
            "Web": f"/Spaces-{obj.space_id}/projects/{obj.pk}/",
        }


class ProjectWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=500)
    Description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    Slug = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    ProjectGroupId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    LifecycleId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    IsDisabled = serializers.BooleanField(required=False)


class ReleaseSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/releases/{id}"

    Version = serializers.CharField(source="version")
    ProjectId = serializers.SerializerMethodField()
    ChannelId = serializers.SerializerMethodField()
    ReleaseNotes = serializers.CharField(source="release_notes")
    Assembled = serializers.DateTimeField(source="created")
    ProjectDeploymentProcessSnapshotId = serializers.SerializerMethodField()
    ProjectVariableSetSnapshotId = serializers.SerializerMethodField()
    LibraryVariableSetSnapshotIds = serializers.SerializerMethodField()
    SelectedPackages = serializers.SerializerMethodField()
    IgnoreChannelRules = serializers.SerializerMethodField()
    BuildInformation = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "Id",
            "SpaceId",
            "ProjectId",
            "ChannelId",
            "Version",
            "ReleaseNotes",
            "Assembled",
            "ProjectDeploymentProcessSnapshotId",
            "ProjectVariableSetSnapshotId",
            "LibraryVariableSetSnapshotIds",
            "SelectedPackages",
            "IgnoreChannelRules",
            "BuildInformation",
            "Links",
        ]

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return obj.project.octopus_id

    def get_ChannelId(self, obj) -> str | None:  # noqa: N802
        return f"Channels-{obj.channel_id}" if obj.channel_id else None

    def get_ProjectDeploymentProcessSnapshotId(self, obj) -> str:  # noqa: N802
        return f"deploymentprocess-{obj.project.octopus_id}-s-{obj.octopus_id}"

    def get_ProjectVariableSetSnapshotId(self, obj) -> str:  # noqa: N802
        return f"variableset-{obj.project.octopus_id}-s-{obj.octopus_id}"

    def get_LibraryVariableSetSnapshotIds(self, obj) -> list[str]:  # noqa: N802
        return []

    def get_SelectedPackages(self, obj) -> list[dict[str, str]]:  # noqa: N802
        return [
            {
                "ActionName": step["Name"],
                "PackageReferenceName": "",
                "PackageId": p["PackageId"],
                "Version": p["Version"],
            }
            for step in obj.process_snapshot or []
            for p in step.get("Packages") or []
        ]

    def get_IgnoreChannelRules(self, obj) -> bool:  # noqa: N802
        return False

    def get_BuildInformation(self, obj) -> list[dict]:  # noqa: N802
        return []

    def extra_links(self, obj):
        base = f"/api/Spaces-{obj.project.space_id}/releases/{obj.octopus_id}"
        return {
            "Project": f"/api/Spaces-{obj.project.space_id}/projects/{obj.project.octopus_id}",
            "Deployments": f"{base}/deployments{{?skip,take}}",
            "DeploymentTemplate": f"{base}/deployments/template",
            "Web": f"/Spaces-{obj.project.space_id}/projects/{obj.project_id}/releases/{obj.pk}/",
        }


class DeploymentSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/deployments/{id}"

    ReleaseId = serializers.SerializerMethodField()
    EnvironmentId = serializers.SerializerMethodField()
    ProjectId = serializers.SerializerMethodField()
    TaskId = serializers.SerializerMethodField()
    Name = serializers.SerializerMethodField()
    Created = serializers.DateTimeField(source="created")
    UseGuidedFailure = serializers.BooleanField(source="use_guided_failure", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "Id",
            "SpaceId",
            "ReleaseId",
            "EnvironmentId",
            "ProjectId",
            "TaskId",
            "Name",
            "Created",
            "UseGuidedFailure",
            "Links",
        ]

    def get_ReleaseId(self, obj) -> str:  # noqa: N802
        return obj.release.octopus_id

    def get_EnvironmentId(self, obj) -> str:  # noqa: N802
        return obj.environment.octopus_id

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return obj.release.project.octopus_id

    def get_TaskId(self, obj) -> str:  # noqa: N802
        return obj.task.octopus_id

    def get_Name(self, obj) -> str:  # noqa: N802
        return f"Deploy to {obj.environment.name}"

    def extra_links(self, obj):
        return {"Task": f"/api/tasks/{obj.task.octopus_id}"}


class RunbookRunSerializer(DeploymentSerializer):
    self_link = "/api/{space}/runbookRuns/{id}"

    RunbookId = serializers.SerializerMethodField()

    class Meta:
        model = RunbookRun
        fields = ["Id", "SpaceId", "RunbookId", "EnvironmentId", "ProjectId", "TaskId", "Name", "Created", "Links"]

    def get_RunbookId(self, obj) -> str:  # noqa: N802
        return obj.runbook.octopus_id

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return obj.runbook.project.octopus_id

    def get_Name(self, obj) -> str:  # noqa: N802
        return f"Run {obj.runbook.name} in {obj.environment.name}"


class SelectedPackageSerializer(StrictSerializer):
    ActionName = serializers.CharField(max_length=200)
    PackageReferenceName = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    Version = serializers.CharField(max_length=50)


class ReleaseCreateSerializer(StrictSerializer):
    ProjectId = serializers.CharField()
    Version = serializers.CharField(required=False, allow_blank=True, default="")
    ReleaseNotes = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    ChannelId = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    SelectedPackages = SelectedPackageSerializer(many=True, required=False)


class DeploymentCreateSerializer(StrictSerializer):
    ReleaseId = serializers.CharField()
    EnvironmentId = serializers.CharField()
    Comments = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    UseGuidedFailure = serializers.BooleanField(required=False, default=False)


class RunbookRunCreateSerializer(StrictSerializer):
    RunbookId = serializers.CharField()
    EnvironmentId = serializers.CharField()
    RunbookSnapshotId = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    UseGuidedFailure = serializers.BooleanField(required=False, default=False)


class CreateReleaseV1Serializer(StrictSerializer):
    """Octopus's CreateReleaseCommandV1."""

    spaceIdOrName = serializers.CharField(required=False)  # noqa: N815 - Octopus's name
    ProjectName = serializers.CharField(max_length=200)
    ReleaseVersion = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=50)
    ChannelName = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    PackageVersion = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=50)
    Packages = serializers.ListField(child=serializers.CharField(max_length=300), required=False, max_length=500)
    ReleaseNotes = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    IgnoreIfAlreadyExists = serializers.BooleanField(required=False, default=False)
    IgnoreChannelRules = serializers.BooleanField(required=False, default=False)


class CreateReleaseV1ResponseSerializer(serializers.Serializer):
    ReleaseId = serializers.CharField()
    ReleaseVersion = serializers.CharField()


class CreateDeploymentV1Serializer(StrictSerializer):
    """Octopus's CreateDeploymentUntenantedCommandV1."""

    spaceIdOrName = serializers.CharField(required=False)  # noqa: N815
    ProjectName = serializers.CharField(max_length=200)
    ReleaseVersion = serializers.CharField(max_length=50)
    EnvironmentNames = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=100)
    ForcePackageRedeployment = serializers.BooleanField(required=False)
    UpdateVariableSnapshot = serializers.BooleanField(required=False)
    ForcePackageDownload = serializers.BooleanField(required=False)
    UseGuidedFailure = serializers.BooleanField(required=False)


class DeploymentServerTaskSerializer(serializers.Serializer):
    DeploymentId = serializers.CharField()
    ServerTaskId = serializers.CharField()


class CreateDeploymentV1ResponseSerializer(serializers.Serializer):
    DeploymentServerTasks = DeploymentServerTaskSerializer(many=True)


class CreateRunbookRunV1Serializer(StrictSerializer):
    """Octopus's CreateRunbookRunCommandV1."""

    spaceIdOrName = serializers.CharField(required=False)  # noqa: N815
    ProjectName = serializers.CharField(max_length=200)
    RunbookName = serializers.CharField(max_length=200)
    EnvironmentNames = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=100)
    Snapshot = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    ForcePackageDownload = serializers.BooleanField(required=False)
    UseGuidedFailure = serializers.BooleanField(required=False)


class RunbookRunServerTaskSerializer(serializers.Serializer):
    RunbookRunId = serializers.CharField()
    ServerTaskId = serializers.CharField()


class CreateRunbookRunV1ResponseSerializer(serializers.Serializer):
    RunbookRunServerTasks = RunbookRunServerTaskSerializer(many=True)
