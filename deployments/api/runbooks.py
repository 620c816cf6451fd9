"""`/api/{spaceId}/projects/{projectId}/runbooks|runbookProcesses|runbookSnapshots` (and `/runbooks`,
`/runbookSnapshots` across the space) and `/api/{spaceId}/interruptions`, in Octopus's shapes."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import processes as pr
from deployments.api.deployments import conflict
from deployments.models import Interruption, Project, Runbook, RunbookSnapshot
from deployments.services import catalog, interruptions, processes
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.api.base import SpaceScopedSerializer, StrictSerializer
from portal.permissions import Permission as P
from servertasks.models import ServerTask


class _InProject:
    """Viewsets served both under /projects/{projectId}/… (that project's) and across the space."""

    def project(self):
        key = self.kwargs.get("project_id")
        if key is None:
            return None
        projects = Project.objects.filter(space=self.get_space())
        pk = Project.pk_from_octopus_id(key)
        return get_object_or_404(projects, pk=pk) if pk is not None else get_object_or_404(projects, slug=key)


# Runbooks ----------------------------------------------------------------------------------------------------


class RunbookSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/runbooks/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    ProjectId = serializers.SerializerMethodField()
    RunbookProcessId = serializers.SerializerMethodField()
    PublishedRunbookSnapshotId = serializers.SerializerMethodField()
    EnvironmentScope = serializers.SerializerMethodField()
    Environments = serializers.SerializerMethodField()
    MultiTenancyMode = serializers.SerializerMethodField()
    DefaultGuidedFailureMode = serializers.SerializerMethodField()
    ConnectivityPolicy = serializers.SerializerMethodField()
    RunRetentionPolicy = serializers.SerializerMethodField()

    class Meta:
        model = Runbook
        fields = [
            "Id",
            "SpaceId",
            "ProjectId",
            "Name",
            "Description",
            "RunbookProcessId",
            "PublishedRunbookSnapshotId",
            "EnvironmentScope",
            "Environments",
            "MultiTenancyMode",
            "DefaultGuidedFailureMode",
            "ConnectivityPolicy",
            "RunRetentionPolicy",
            "Links",
        ]

    def get_SpaceId(self, obj) -> str:  # noqa: N802
        return f"Spaces-{obj.project.space_id}"

    def link_context(self, obj):
        return {"space": f"Spaces-{obj.project.space_id}"}

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return f"Projects-{obj.project_id}"

    def get_RunbookProcessId(self, obj) -> str:  # noqa: N802
        return f"RunbookProcess-{obj.octopus_id}"

    def get_PublishedRunbookSnapshotId(self, obj) -> str | None:  # noqa: N802
        return f"RunbookSnapshots-{obj.published_snapshot_id}" if obj.published_snapshot_id else None

    def get_EnvironmentScope(self, obj) -> str:  # noqa: N802
        return "All"

    def get_Environments(self, obj) -> list[str]:  # noqa: N802
        return []

    def get_MultiTenancyMode(self, obj) -> str:  # noqa: N802
        return "Untenanted"

    def get_DefaultGuidedFailureMode(self, obj) -> str:  # noqa: N802
        return "EnvironmentDefault"

    def get_ConnectivityPolicy(self, obj) -> dict:  # noqa: N802
        return {
            "AllowDeploymentsToNoTargets": True,
            "ExcludeUnhealthyTargets": False,
            "SkipMachineBehavior": "None",
            "TargetRoles": [],
        }

    def get_RunRetentionPolicy(self, obj) -> dict:  # noqa: N802
        return {"QuantityToKeep": 100, "ShouldKeepForever": False}

    def extra_links(self, obj):
        base = f"/api/Spaces-{obj.project.space_id}/projects/Projects-{obj.project_id}"
        return {
            "RunbookProcesses": f"{base}/runbookProcesses/RunbookProcess-{obj.octopus_id}",
            "RunbookSnapshots": f"{base}/runbookSnapshots",
        }


class RunbookWriteSerializer(StrictSerializer):
    Name = serializers.CharField(allow_blank=True, max_length=500)
    Description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    ProjectId = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class RunbookViewSet(_InProject, SpaceScopedViewSet):
    serializer_class = RunbookSerializer
    item_type = "Runbook"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROCESS_EDIT, Runbook

    def scoped_queryset(self, space):
        runbooks = Runbook.objects.filter(project__space=space).select_related("project")
        if (project := self.project()) is not None:
            runbooks = runbooks.filter(project=project)
        return self.filter_ids_and_name(runbooks)

    @extend_schema(request=RunbookWriteSerializer, responses={201: RunbookSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(RunbookWriteSerializer).validated_data
        project = self.project()
        if project is None:
            project = Project.objects.filter(
                space=space, pk=Project.pk_from_octopus_id(d.get("ProjectId")) or 0
            ).first()
            if project is None:
                raise ApiValidationError({"ProjectId": [f"No project {d.get('ProjectId')!r} in {space.name}."]})
        try:
            runbook = catalog.create_runbook(
                actor=request.user, project=project, name=d["Name"], description=d["Description"] or ""
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(runbook).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RunbookWriteSerializer, responses={200: RunbookSerializer})
    def update(self, request, *args, **kwargs):
        self.require_edit()
        runbook = self.get_object()
        d = self._input(RunbookWriteSerializer).validated_data
        try:
            runbook = catalog.update_runbook(
                actor=request.user, runbook=runbook, name=d["Name"], description=d["Description"] or ""
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(runbook).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            catalog.delete_runbook(actor=request.user, runbook=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunbookProcessViewSet(_InProject, SpaceScopedViewSet):
    """`RunbookProcess-Runbooks-1`: a runbook's steps, as a deployment process is (Version, 409 when stale)."""

    serializer_class = pr.ProcessWriteSerializer
    view_permission, edit_permission, model = P.PROCESS_VIEW, P.PROCESS_EDIT, Runbook

    def scoped_queryset(self, space):
        runbooks = Runbook.objects.filter(project__space=space).select_related("project__space")
        if (project := self.project()) is not None:
            runbooks = runbooks.filter(project=project)
        return runbooks

    def get_object(self):
        key = self.kwargs["pk"]
        pk = (
            Runbook.pk_from_octopus_id(key.removeprefix("RunbookProcess-"))
            if key.startswith("RunbookProcess-")
            else None
        )
        return get_object_or_404(self.get_queryset(), pk=pk)

    @extend_schema(responses={200: dict})
    def retrieve(self, request, *args, **kwargs):
        runbook = self.get_object()
        return Response(pr.process_resource(runbook.project, runbook))

    @extend_schema(request=pr.ProcessWriteSerializer, responses={200: dict, 409: dict})
    def update(self, request, *args, **kwargs):
        self.require_edit()
        runbook = self.get_object()
        d = self._input(pr.ProcessWriteSerializer).validated_data
        specs = pr.parse_steps(runbook.project, d["Steps"])
        try:
            processes.save_process(
                actor=request.user, project=runbook.project, runbook=runbook, version=d["Version"], steps=specs
            )
        except processes.VersionConflict as error:
            return conflict(error)
        except ValidationError as error:
            _reraise_for_api(error)
        runbook.refresh_from_db()
        return Response(pr.process_resource(runbook.project, runbook))

    def list(self, request, *args, **kwargs):
        self.item_type = "RunbookProcess"
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([pr.process_resource(runbook.project, runbook) for runbook in page])

    def all(self, request, *args, **kwargs):  # not an action here: a process list has no /all
        return self.list(request, *args, **kwargs)


class RunbookSnapshotSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/runbookSnapshots/{id}"

    Name = serializers.CharField(source="name")
    Notes = serializers.CharField(source="notes")
    ProjectId = serializers.SerializerMethodField()
    RunbookId = serializers.SerializerMethodField()
    FrozenRunbookProcessId = serializers.SerializerMethodField()
    FrozenProjectVariableSetId = serializers.SerializerMethodField()
    Assembled = serializers.DateTimeField(source="created")

    class Meta:
        model = RunbookSnapshot
        fields = [
            "Id",
            "SpaceId",
            "ProjectId",
            "RunbookId",
            "Name",
            "Notes",
            "FrozenRunbookProcessId",
            "FrozenProjectVariableSetId",
            "Assembled",
            "Links",
        ]

    def get_SpaceId(self, obj) -> str:  # noqa: N802
        return f"Spaces-{obj.runbook.project.space_id}"

    def link_context(self, obj):
        return {"space": f"Spaces-{obj.runbook.project.space_id}"}

    def get_ProjectId(self, obj) -> str:  # noqa: N802
        return f"Projects-{obj.runbook.project_id}"

    def get_RunbookId(self, obj) -> str:  # noqa: N802
        return f"Runbooks-{obj.runbook_id}"

    def get_FrozenRunbookProcessId(self, obj) -> str:  # noqa: N802
        return f"RunbookProcess-Runbooks-{obj.runbook_id}-s-{obj.octopus_id}"

    def get_FrozenProjectVariableSetId(self, obj) -> str:  # noqa: N802
        return f"variableset-Projects-{obj.runbook.project_id}-s-{obj.octopus_id}"


class RunbookSnapshotWriteSerializer(StrictSerializer):
    RunbookId = serializers.CharField()
    ProjectId = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    Name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=500)
    Notes = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class RunbookSnapshotViewSet(_InProject, SpaceScopedViewSet):
    serializer_class = RunbookSnapshotSerializer
    item_type = "RunbookSnapshot"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROCESS_EDIT, RunbookSnapshot

    def scoped_queryset(self, space):
        snapshots = RunbookSnapshot.objects.filter(runbook__project__space=space).select_related("runbook__project")
        if (project := self.project()) is not None:
            snapshots = snapshots.filter(runbook__project=project)
        return self.filter_ids_and_name(snapshots)

    @extend_schema(request=RunbookSnapshotWriteSerializer, responses={201: RunbookSnapshotSerializer})
    def create(self, request, *args, **kwargs):
        """`?publish=true` makes runs use the new snapshot."""
        space = self.require_edit()
        d = self._input(RunbookSnapshotWriteSerializer).validated_data
        publish = request.query_params.get("publish", "false").lower()
        if publish not in ("true", "false"):
            raise ApiValidationError({"publish": ["Use true or false."]})
        runbook = Runbook.objects.filter(
            project__space=space, pk=Runbook.pk_from_octopus_id(d["RunbookId"]) or 0
        ).first()
        if runbook is None:
            raise ApiValidationError({"RunbookId": [f"No runbook {d['RunbookId']!r} in {space.name}."]})
        try:
            snapshot = processes.create_runbook_snapshot(
                actor=request.user,
                runbook=runbook,
                name=d.get("Name") or "",
                notes=d.get("Notes") or "",
                publish=publish == "true",
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(snapshot).data, status=status.HTTP_201_CREATED)


# Interruptions ------------------------------------------------------------------------------------------------


class InterruptionSerializer(SpaceScopedSerializer):
    """Octopus's InterruptionResource over deployments.services.interruptions: a manual intervention's form answers
    `Result` (Proceed/Abort), a guided failure's `Guidance` (Retry/Ignore/Fail); both take `Notes`."""

    self_link = "/api/{space}/interruptions/{id}"

    Title = serializers.CharField(source="title")
    Created = serializers.DateTimeField(source="created")
    IsPending = serializers.BooleanField(source="is_pending")
    Type = serializers.CharField(source="type")
    TaskId = serializers.SerializerMethodField()
    Form = serializers.SerializerMethodField()
    RelatedDocumentIds = serializers.SerializerMethodField()
    ResponsibleTeamIds = serializers.SerializerMethodField()
    ResponsibleUserId = serializers.SerializerMethodField()
    CanTakeResponsibility = serializers.SerializerMethodField()
    HasResponsibility = serializers.SerializerMethodField()
    CorrelationId = serializers.SerializerMethodField()
    IsLinkedToOtherInterruption = serializers.SerializerMethodField()

    class Meta:
        model = Interruption
        fields = [
            "Id",
            "SpaceId",
            "Title",
            "Created",
            "IsPending",
            "Type",
            "TaskId",
            "Form",
            "RelatedDocumentIds",
            "ResponsibleTeamIds",
            "ResponsibleUserId",
            "CanTakeResponsibility",
            "HasResponsibility",
            "CorrelationId",
            "IsLinkedToOtherInterruption",
            "Links",
        ]

    def get_TaskId(self, obj) -> str:  # noqa: N802
        return f"ServerTasks-{obj.task_id}"

    def get_Form(self, obj) -> dict:  # noqa: N802
        """Octopus's form: the instructions, Notes, then the buttons (Proceed/Abort, or Retry/Ignore/Fail)."""
        manual = obj.type == Interruption.Type.MANUAL
        field = "Result" if manual else "Guidance"
        confirm = {Interruption.Result.ABORT, Interruption.Result.FAIL}
        return {
            "Values": {"Instructions": None, "Notes": obj.note or None, field: obj.result or None},
            "Elements": [
                {
                    "Name": "Instructions",
                    "Control": {"Type": "Paragraph", "Text": obj.instructions, "ResolveLinks": False},
                    "IsValueRequired": False,
                },
                {"Name": "Notes", "Control": {"Type": "TextArea", "Label": "Notes"}, "IsValueRequired": False},
                {
                    "Name": field,
                    "Control": {
                        "Type": "SubmitButtonGroup",
                        "Buttons": [
                            {"Text": str(result), "Value": str(result), "RequiresConfirmation": result in confirm}
                            for result in obj.results
                        ],
                    },
                    "IsValueRequired": True,
                },
            ],
        }

    def get_RelatedDocumentIds(self, obj) -> list[str]:  # noqa: N802
        task = obj.task
        ids = [task.octopus_id]
        if task.project_id:
            ids.append(f"Projects-{task.project_id}")
        if task.environment_id:
            ids.append(f"Environments-{task.environment_id}")
        return ids

    def get_ResponsibleTeamIds(self, obj) -> list[str]:  # noqa: N802
        return list(obj.responsible_team_ids or [])

    def get_ResponsibleUserId(self, obj) -> str | None:  # noqa: N802
        return f"Users-{obj.responsible_user_id}" if obj.responsible_user_id else None

    def _user(self):
        request = self.context.get("request")
        return request.user if request is not None else None

    def get_CanTakeResponsibility(self, obj) -> bool:  # noqa: N802
        user = self._user()
        return bool(user is not None and interruptions.can_take_responsibility(interruption=obj, user=user))

    def get_HasResponsibility(self, obj) -> bool:  # noqa: N802
        user = self._user()
        return bool(user is not None and obj.responsible_user_id == user.pk)

    def get_CorrelationId(self, obj) -> str:  # noqa: N802
        return f"{obj.task.octopus_id}_{obj.pk}"

    def get_IsLinkedToOtherInterruption(self, obj) -> bool:  # noqa: N802
        return False

    def extra_links(self, obj):
        base = f"/api/Spaces-{obj.space_id}/interruptions/{obj.octopus_id}"
        return {"Submit": f"{base}/submit", "Responsible": f"{base}/responsible"}


class InterruptionSubmitSerializer(StrictSerializer):
    """The form's values: `Result` answers a manual intervention, `Guidance` a guided failure."""

    Result = serializers.ChoiceField(
        choices=[Interruption.Result.PROCEED, Interruption.Result.ABORT], required=False, allow_null=True
    )
    Guidance = serializers.ChoiceField(
        choices=[Interruption.Result.RETRY, Interruption.Result.IGNORE, Interruption.Result.FAIL],
        required=False,
        allow_null=True,
    )
    Notes = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=1000)
    Instructions = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class InterruptionViewSet(SpaceScopedViewSet):
    """`?regarding=ServerTasks-1` and `?pendingOnly=true` filter, as Octopus's do."""

    serializer_class = InterruptionSerializer
    item_type = "Interruption"
    view_permission, edit_permission, model = P.TASK_VIEW, P.DEPLOYMENT_CREATE, Interruption

    def scoped_queryset(self, space):
        found = (
            interruptions.interruptions_visible_to(self.request.user).filter(space=space).select_related("task__space")
        )
        params = self.request.query_params
        if params.get("regarding"):
            pk = ServerTask.pk_from_octopus_id(params["regarding"])
            found = found.filter(task_id=pk or 0)
        if params.get("pendingOnly") not in (None, ""):
            flag = params["pendingOnly"].lower()
            if flag not in ("true", "false"):
                raise ApiValidationError({"pendingOnly": ["Use true or false."]})
            if flag == "true":
                found = found.filter(is_pending=True)
        return found

    @extend_schema(request=None, responses={200: InterruptionSerializer})
    @action(detail=True, methods=["put"], pagination_class=None)
    def responsible(self, request, *args, **kwargs):
        """Take responsibility: from now on only you may answer it."""
        self.require_edit()
        try:
            interruption = interruptions.take_interruption_responsibility(
                interruption=self.get_object(), user=request.user
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(interruption).data)

    @extend_schema(request=InterruptionSubmitSerializer, responses={200: InterruptionSerializer})
    @action(detail=True, methods=["post"], pagination_class=None)
    def submit(self, request, *args, **kwargs):
        """`{"Result": "Proceed" | "Abort", "Notes": "…"}` (or `Guidance`: Retry/Ignore/Fail): the task goes on
        from there."""
        self.require_edit()
        interruption = self.get_object()
        d = self._input(InterruptionSubmitSerializer).validated_data
        try:
            interruption = interruptions.submit_interruption_form(
                interruption=interruption, user=request.user, values={k: v for k, v in d.items() if v is not None}
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(interruption).data)
