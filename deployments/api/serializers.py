from rest_framework import serializers

from deployments.services.snapshots import pool_id
from portal.api.base import SpaceScopedSerializer
from servertasks.models import ServerTask


class ServerTaskSerializer(SpaceScopedSerializer):
    """Octopus's TaskResource."""

    self_link = "/api/tasks/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    Arguments = serializers.SerializerMethodField()
    State = serializers.CharField(source="state")
    QueueTime = serializers.DateTimeField(source="queued")
    StartTime = serializers.DateTimeField(source="started", allow_null=True)
    CompletedTime = serializers.DateTimeField(source="completed", allow_null=True)
    ErrorMessage = serializers.CharField(source="error_message")
    IsCompleted = serializers.BooleanField(source="is_completed")
    FinishedSuccessfully = serializers.SerializerMethodField()
    HasBeenPickedUpByProcessor = serializers.SerializerMethodField()
    HasWarningsOrErrors = serializers.SerializerMethodField()
    CanRerun = serializers.SerializerMethodField()
    ServerNode = serializers.CharField(source="server_node")
    HasPendingInterruptions = serializers.BooleanField(source="has_pending_interruptions")
    Duration = serializers.CharField(source="duration")

    class Meta:
        model = ServerTask
        fields = [
            "Id",
            "SpaceId",
            "Name",
            "Description",
            "Arguments",
            "State",
            "QueueTime",
            "StartTime",
            "CompletedTime",
            "ErrorMessage",
            "IsCompleted",
            "FinishedSuccessfully",
            "HasBeenPickedUpByProcessor",
            "HasWarningsOrErrors",
            "CanRerun",
            "ServerNode",
            "HasPendingInterruptions",
            "Duration",
            "Links",
        ]

    # Internal to the orchestrator: a runbook's process and variable snapshot, a paused task's progress.
    INTERNAL_ARGUMENTS = ("Process", "Variables", "Resume")

    def get_Arguments(self, obj) -> dict:  # noqa: N802
        """What was asked for (ids, the ad-hoc script); never the variable snapshot a runbook run carries."""
        arguments = {k: v for k, v in obj.arguments.items() if k not in self.INTERNAL_ARGUMENTS}
        if obj.name == "AdHocScript" and obj.arguments.get("Process"):
            step = obj.arguments["Process"][0]
            arguments.update(
                ScriptBody=step["ScriptBody"], Syntax=step["Syntax"], WorkerPoolId=pool_id(step["WorkerPoolId"])
            )
        return arguments

    def get_FinishedSuccessfully(self, obj) -> bool:  # noqa: N802
        return obj.state == ServerTask.State.SUCCESS

    def get_HasBeenPickedUpByProcessor(self, obj) -> bool:  # noqa: N802
        return obj.started is not None

    def get_HasWarningsOrErrors(self, obj) -> bool:  # noqa: N802
        return obj.has_warnings or obj.state == ServerTask.State.FAILED

    def get_CanRerun(self, obj) -> bool:  # noqa: N802
        return obj.is_completed and obj.name in ("Deploy", "RunbookRun", "AdHocScript")

    def extra_links(self, obj):
        return {
            "Raw": f"/api/tasks/{obj.octopus_id}/raw",
            "Details": f"/api/tasks/{obj.octopus_id}/details",
            "Cancel": f"/api/tasks/{obj.octopus_id}/cancel",
            "Web": f"/Spaces-{obj.space_id}/tasks/{obj.pk}/",
        }
