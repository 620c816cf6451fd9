"""Octopus's EnvironmentResource, ProjectResource, DeploymentProcessResource, ReleaseResource,
DeploymentResource and RunbookRunResource."""

from __future__ import annotations

from rest_framework import serializers

from deployments.models import Deployment, Environment, Project, Release, RunbookRun
from portal.api.base import SpaceScopedSerializer


class EnvironmentSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/environments/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    SortOrder = serializers.IntegerField(source="sort_order")
    UseGuidedFailure = serializers.BooleanField(source="use_guided_failure", read_only=True)

    class Meta:
        model = Environment
        fields = ["Id", "SpaceId", "Name", "Description", "SortOrder", "UseGuidedFailure", "Links"]


class ProjectSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/projects/{id}"

    Name = serializers.CharField(source="name")
    Slug = serializers.CharField(source="slug")
    Description = serializers.CharField(source="description")
    DeploymentProcessId = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["Id", "SpaceId", "Name", "Slug", "Description", "DeploymentProcessId", "Links"]

    def get_DeploymentProcessId(self, obj) -> str:  # noqa: N802
        return f"deploymentprocess-{obj.octopus_id}"

    def extra_links(self, obj):
        space = f"Spaces-{obj.space_id}"
        return {"DeploymentProcess": f"/api/{space}/projects/{obj.octopus_id}/deploymentprocesses",
                "Releases": f"/api/{space}/projects/{obj.octopus_id}/releases"}


def action_resource(step: dict) -> dict:
    """One snapshot step as Octopus's DeploymentStepResource with its one action."""
    properties = {"Octopus.Action.Script.ScriptSource": step.get("ScriptSource") or "Inline", "Octopus.Action.Script.Syntax": step["Syntax"],
                  "Octopus.Action.Script.ScriptBody": step["ScriptBody"],
                  "Octopus.Action.Script.ScriptParameters": step["ScriptParameters"],
                  "Octopus.Action.RunOnServer": str(step["Location"] == "Server"),
                  "Octopus.Action.MaxParallelism": str(step["MaxParallelism"])}
    if step["Instructions"]:
        properties["Octopus.Action.Manual.Instructions"] = step["Instructions"]
    if step.get("ResponsibleTeamIds"):
        properties["Octopus.Action.Manual.ResponsibleTeamIds"] = ",".join(step["ResponsibleTeamIds"])
    if step.get("ScriptSource") == "Package":
        properties["Octopus.Action.Script.ScriptFileName"] = step.get("ScriptFileName") or ""
    pool = f"WorkerPools-{step['WorkerPoolId']}" if step["WorkerPoolId"] else None
    return {"Id": step["Id"], "Name": step["Name"], "Condition": step["Condition"],
            "StartTrigger": "StartWithPrevious" if step["StartWithPrevious"] else "StartAfterPrevious",
            "Properties": {"Octopus.Action.TargetRoles": ",".join(step["TargetRoles"])} if step["TargetRoles"] else {},
            "Actions": [{"Id": step["Id"], "Name": step["Name"], "ActionType": step["ActionType"], "IsDisabled": step["IsDisabled"],
                         "WorkerPoolId": pool, "WorkerPoolVariable": step["WorkerPoolVariable"] or None,
                         "Packages": [{"PackageId": p["PackageId"], "Version": p.get("Version", ""), "FeedId": "feeds-builtin"}
                                      for p in step["Packages"]],
                         "Properties": properties}]}


class ReleaseSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/releases/{id}"

    Version = serializers.CharField(source="version")
    ProjectId = serializers.SerializerMethodField()
    ReleaseNotes = serializers.CharField(source="release_notes")
    Assembled = serializers.DateTimeField(source="created")

    class Meta:
        model = Release
        fields = ["Id", "SpaceId", "ProjectId", "Version", "ReleaseNotes", "Assembled", "Links"]

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return obj.project.octopus_id


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
        fields = ["Id", "SpaceId", "ReleaseId", "EnvironmentId", "ProjectId", "TaskId", "Name", "Created", "UseGuidedFailure", "Links"]

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


class ReleaseCreateSerializer(serializers.Serializer):
    ProjectId = serializers.CharField()
    Version = serializers.CharField(required=False, allow_blank=True, default="")
    ReleaseNotes = serializers.CharField(required=False, allow_blank=True, default="")


class DeploymentCreateSerializer(serializers.Serializer):
    ReleaseId = serializers.CharField()
    EnvironmentId = serializers.CharField()
    UseGuidedFailure = serializers.BooleanField(required=False, default=False)


class RunbookRunCreateSerializer(serializers.Serializer):
    RunbookId = serializers.CharField()
    EnvironmentId = serializers.CharField()


