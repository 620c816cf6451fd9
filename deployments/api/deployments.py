"""`/api/{spaceId}/environments|projects|releases|deployments|runbookRuns|variables`, and the unscoped aliases
for the default space. Writes go through deployments.services (catalog, deploy, processes), as the pages' do."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import processes as pr
from deployments.api import resources as r
from deployments.api.lifecycles import ChannelSerializer
from deployments.api.lifecycles import _find as _find_or_none
from deployments.api.machines import MachineSerializer
from deployments.models import (
    Channel,
    Deployment,
    Environment,
    Lifecycle,
    Project,
    ProjectGroup,
    Release,
    Runbook,
    RunbookRun,
    RunbookSnapshot,
)
from deployments.services import catalog, deploy, lifecycles, processes
from deployments.services.interruptions import set_environment_guided_failure
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P
from portal.services.access import require_permission


def _find(model, space, octopus_id: str, field: str, **scope):
    """The space's object with that id, or a 400 naming the field."""
    found = model.objects.filter(pk=model.pk_from_octopus_id(octopus_id) or 0, **scope).first() if octopus_id else None
    if found is None or found.space_id != space.pk:
        raise ApiValidationError({field: [f"No {model.__name__.lower()} {octopus_id!r} in this space."]})
    return found


def conflict(error: processes.VersionConflict) -> Response:
    return Response(
        {
            "ErrorMessage": str(error),
            "Errors": [str(error)],
            "Details": {"Version": [f"sent {error.sent}, current {error.current}"]},
        },
        status=status.HTTP_409_CONFLICT,
    )


def _by_name(queryset, name: str, field: str, what: str):
    """Octopus's executions API names things: by name, else slug, else id."""
    found = queryset.filter(name__iexact=name).first()
    if found is None and hasattr(queryset.model, "slug"):
        found = queryset.filter(slug=name).first()
    if found is None:
        found = queryset.filter(pk=queryset.model.pk_from_octopus_id(name) or 0).first()
    if found is None:
        raise ApiValidationError({field: [f"No {what} named {name!r}."]})
    return found


class EnvironmentViewSet(SpaceScopedViewSet):
    serializer_class = r.EnvironmentSerializer
    item_type = "DeploymentEnvironment"
    view_permission, edit_permission, model = P.ENVIRONMENT_VIEW, P.ENVIRONMENT_EDIT, Environment

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Environment.objects.filter(space=space))

    @extend_schema(request=r.EnvironmentWriteSerializer, responses={201: r.EnvironmentSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.EnvironmentWriteSerializer).validated_data
        try:
            with transaction.atomic():
                environment = catalog.create_environment(
                    actor=request.user, space=space, name=d["Name"], description=d["Description"] or ""
                )
                if "SortOrder" in d:
                    environment = catalog.update_environment(
                        actor=request.user,
                        environment=environment,
                        name=environment.name,
                        description=environment.description,
                        sort_order=d["SortOrder"],
                    )
                if d.get("UseGuidedFailure"):
                    environment = set_environment_guided_failure(
                        actor=request.user, environment=environment, enabled=True
                    )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(environment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.EnvironmentWriteSerializer, responses={200: r.EnvironmentSerializer})
    def update(self, request, *args, **kwargs):
        self.require_edit()
        environment = self.get_object()
        d = self._input(r.EnvironmentWriteSerializer).validated_data
        try:
            with transaction.atomic():
                environment = catalog.update_environment(
                    actor=request.user,
                    environment=environment,
                    name=d["Name"],
                    description=d["Description"] or "",
                    sort_order=d.get("SortOrder"),
                )
                if "UseGuidedFailure" in d:
                    environment = set_environment_guided_failure(
                        actor=request.user, environment=environment, enabled=d["UseGuidedFailure"]
                    )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(environment).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            catalog.delete_environment(actor=request.user, environment=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses={200: r.EnvironmentSerializer(many=True)},
    )
    @action(detail=False, methods=["put"], pagination_class=None)
    def sortorder(self, request, *args, **kwargs):
        """`PUT` the space's environment ids in their new order."""
        space = self.require_edit()
        ids = request.data
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiValidationError({"Ids": ["Send the environment ids as a list, in order."]})
        try:
            catalog.reorder_environments(
                actor=request.user, space=space, ordered_ids=[Environment.pk_from_octopus_id(i) or 0 for i in ids]
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(Environment.objects.filter(space=space), many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def machines(self, request, *args, **kwargs):
        """The deployment targets in the environment."""
        environment = self.get_object()
        self.item_type = "DeploymentTarget"
        page = self.paginate_queryset(environment.deployment_targets.prefetch_related("environments"))
        return self.get_paginated_response(MachineSerializer(page, many=True).data)


class ProjectViewSet(SpaceScopedViewSet):
    serializer_class = r.ProjectSerializer
    item_type = "Project"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROJECT_EDIT, Project

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Project.objects.filter(space=space))

    def get_object(self):
        """By id (Projects-1) or by slug, as Octopus finds projects."""
        queryset = self.get_queryset()
        key = self.kwargs["pk"]
        pk = Project.pk_from_octopus_id(key)
        return get_object_or_404(queryset, pk=pk) if pk is not None else get_object_or_404(queryset, slug=key)

    def _links(self, space, d):
        group = _find_or_none(ProjectGroup, space, d.get("ProjectGroupId"), "ProjectGroupId")
        lifecycle = _find_or_none(Lifecycle, space, d.get("LifecycleId"), "LifecycleId")
        return group, lifecycle

    @extend_schema(request=r.ProjectWriteSerializer, responses={201: r.ProjectSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.ProjectWriteSerializer).validated_data
        group, lifecycle = self._links(space, d)
        try:
            with transaction.atomic():
                project = catalog.create_project(
                    actor=request.user,
                    space=space,
                    name=d["Name"],
                    description=d["Description"] or "",
                    project_group=group,
                    lifecycle=lifecycle,
                )
                if d.get("Slug") or d.get("IsDisabled"):
                    project = catalog.update_project(
                        actor=request.user,
                        project=project,
                        name=project.name,
                        description=project.description,
                        slug=d.get("Slug") or None,
                        is_disabled=d.get("IsDisabled"),
                    )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.ProjectWriteSerializer, responses={200: r.ProjectSerializer})
    def update(self, request, *args, **kwargs):
        space = self.require_edit()
        project = self.get_object()
        d = self._input(r.ProjectWriteSerializer).validated_data
        group, lifecycle = self._links(space, d)
        try:
            project = catalog.update_project(
                actor=request.user,
                project=project,
                name=d["Name"],
                description=d["Description"] or "",
                project_group=group,
                lifecycle=lifecycle,
                slug=d.get("Slug") or None,
                is_disabled=d.get("IsDisabled"),
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(project).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            catalog.delete_project(actor=request.user, project=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses={200: dict})
    @extend_schema(methods=["PUT"], request=pr.ProcessWriteSerializer, responses={200: dict, 409: dict})
    @action(detail=True, methods=["get", "put"], pagination_class=None)
    def deploymentprocesses(self, request, *args, **kwargs):
        """Octopus's DeploymentProcessResource; `PUT` replaces the steps when `Version` is the current one (else
        409)."""
        project = self.get_object()
        if request.method == "GET":
            require_permission(request.user, P.PROCESS_VIEW, space=project.space)
            return Response(pr.process_resource(project))
        require_permission(request.user, P.PROCESS_EDIT, space=project.space)
        d = self._input(pr.ProcessWriteSerializer).validated_data
        specs = pr.parse_steps(project, d["Steps"])
        try:
            processes.save_process(actor=request.user, project=project, version=d["Version"], steps=specs)
        except processes.VersionConflict as error:
            return conflict(error)
        except ValidationError as error:
            _reraise_for_api(error)
        project.refresh_from_db()
        return Response(pr.process_resource(project))

    @extend_schema(responses={200: r.ReleaseSerializer})
    @action(detail=True, methods=["get"], url_path=r"releases/(?P<version>[^/]+)", pagination_class=None)
    def release_by_version(self, request, *args, version: str = "", **kwargs):
        project = self.get_object()
        require_permission(request.user, P.RELEASE_VIEW, space=project.space)
        return Response(
            r.ReleaseSerializer(get_object_or_404(project.releases.select_related("project"), version=version)).data
        )

    @extend_schema(responses={200: r.ReleaseSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def releases(self, request, *args, **kwargs):
        """The project's releases, newest first (`searchByVersion` filters)."""
        project = self.get_object()
        require_permission(request.user, P.RELEASE_VIEW, space=project.space)
        releases = project.releases.select_related("project")
        if request.query_params.get("searchByVersion"):
            releases = releases.filter(version__icontains=request.query_params["searchByVersion"])
        self.item_type = "Release"
        page = self.paginate_queryset(releases)
        return self.get_paginated_response(r.ReleaseSerializer(page, many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def channels(self, request, *args, **kwargs):
        project = self.get_object()
        lifecycles.default_channel(project)
        self.item_type = "Channel"
        page = self.paginate_queryset(project.channels.select_related("project"))
        return self.get_paginated_response(ChannelSerializer(page, many=True).data)


class VariableSetViewSet(SpaceScopedViewSet):
    """`/api/{spaceId}/variables/variableset-Projects-1`: a project's variables, read and replaced whole."""

    serializer_class = pr.VariableSetWriteSerializer
    view_permission, edit_permission, model = P.VARIABLE_VIEW, P.VARIABLE_EDIT, Project

    def scoped_queryset(self, space):
        return Project.objects.filter(space=space)

    def get_object(self):
        key = self.kwargs["pk"]
        pk = Project.pk_from_octopus_id(key.removeprefix("variableset-")) if key.startswith("variableset-") else None
        return get_object_or_404(self.get_queryset(), pk=pk)

    @extend_schema(responses={200: dict})
    def retrieve(self, request, *args, **kwargs):
        return Response(pr.variable_set_resource(self.get_object()))

    @extend_schema(operation_id="variables_list", responses={200: dict})
    def list(self, request, *args, **kwargs):
        self.item_type = "VariableSet"
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([pr.variable_set_resource(project) for project in page])

    @extend_schema(responses={200: dict})
    def all(self, request, *args, **kwargs):
        return Response([pr.variable_set_resource(project) for project in self.get_queryset()])

    @extend_schema(request=pr.VariableSetWriteSerializer, responses={200: dict, 409: dict})
    def update(self, request, *args, **kwargs):
        self.require_edit()
        project = self.get_object()
        d = self._input(pr.VariableSetWriteSerializer).validated_data
        specs = pr.parse_variables(project, d["Variables"])
        try:
            processes.save_variable_set(actor=request.user, project=project, version=d["Version"], variables=specs)
        except processes.VersionConflict as error:
            return conflict(error)
        except ValidationError as error:
            _reraise_for_api(error)
        project.refresh_from_db()
        return Response(pr.variable_set_resource(project))


class ReleaseViewSet(SpaceScopedViewSet):
    serializer_class = r.ReleaseSerializer
    item_type = "Release"
    view_permission, edit_permission, model = P.RELEASE_VIEW, P.RELEASE_CREATE, Release

    def scoped_queryset(self, space):
        return Release.objects.filter(project__space=space).select_related("project")

    @extend_schema(request=r.ReleaseCreateSerializer, responses={201: r.ReleaseSerializer})
    def create(self, request, *args, **kwargs):
        """Octopus's `POST /releases`: ProjectId, Version, ChannelId, SelectedPackages [{ActionName, Version}]."""
        space = self.require_edit()
        d = self._input(r.ReleaseCreateSerializer).validated_data
        project = _find(Project, space, d["ProjectId"], "ProjectId")
        channel = _find_or_none(Channel, space, d.get("ChannelId"), "ChannelId", project=project)
        picks = {p["ActionName"]: p["Version"] for p in d.get("SelectedPackages") or []}
        try:
            release = deploy.create_release(
                actor=request.user,
                project=project,
                version=d["Version"],
                release_notes=d["ReleaseNotes"] or "",
                channel=channel,
                package_versions=picks,
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.CreateReleaseV1Serializer, responses={201: r.CreateReleaseV1ResponseSerializer})
    @action(detail=False, methods=["post"], url_path="create/v1", pagination_class=None)
    def create_v1(self, request, *args, **kwargs):
        """Octopus's CreateReleaseCommandV1: the project, channel and packages by name; `Packages` as
        "StepOrPackageId:Version", `PackageVersion` for every other package."""
        space = self.require_edit()
        d = self._input(r.CreateReleaseV1Serializer).validated_data
        project = _by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        channel = (
            _by_name(project.channels.all(), d["ChannelName"], "ChannelName", "channel")
            if d.get("ChannelName")
            else None
        )
        picks = {"*": d["PackageVersion"]} if d.get("PackageVersion") else {}
        for i, text in enumerate(d.get("Packages") or []):
            key, sep, version = text.rpartition(":") if ":" in text else ("", "", "")
            if not sep or not key or not version:
                raise ApiValidationError({f"Packages[{i}]": ["Write each as StepNameOrPackageId:Version."]})
            picks[key] = version
        version = d.get("ReleaseVersion") or ""
        existing = project.releases.filter(version=version).first() if version else None
        if existing is not None and d["IgnoreIfAlreadyExists"]:
            release = existing
        else:
            try:
                release = deploy.create_release(
                    actor=request.user,
                    project=project,
                    version=version,
                    release_notes=d.get("ReleaseNotes") or "",
                    channel=channel,
                    package_versions=picks,
                )
            except ValidationError as error:
                _reraise_for_api(error)
        return Response(
            {"ReleaseId": release.octopus_id, "ReleaseVersion": release.version}, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], url_path="deployments/template", pagination_class=None)
    def deployment_template(self, request, *args, **kwargs):
        """Octopus's DeploymentTemplateResource: where the release may go now (its lifecycle's open phases)."""
        release = self.get_object()
        open_now = lifecycles.environments_open_to(release)
        return Response(
            {
                "IsDeploymentProcessModified": deploy.process_changed_since(release),
                "IsVariableSetModified": deploy.variables_snapshot(release.project) != release.variables_snapshot,
                "IsLibraryVariableSetModified": False,
                "DeploymentNotes": None,
                "TenantPromotions": [],
                "PromoteTo": [
                    {
                        "Id": e.octopus_id,
                        "Name": e.name,
                        "UseGuidedFailure": e.use_guided_failure,
                        "Links": {"Self": f"/api/Spaces-{e.space_id}/environments/{e.octopus_id}"},
                    }
                    for e in open_now
                ],
            }
        )

    @extend_schema(responses={200: r.DeploymentSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deployments(self, request, *args, **kwargs):
        release = self.get_object()
        require_permission(request.user, P.DEPLOYMENT_VIEW, space=self.get_space())
        self.item_type = "Deployment"
        page = self.paginate_queryset(release.deployments.select_related("release__project", "environment", "task"))
        return self.get_paginated_response(r.DeploymentSerializer(page, many=True).data)


class DeploymentViewSet(SpaceScopedViewSet):
    serializer_class = r.DeploymentSerializer
    item_type = "Deployment"
    view_permission, edit_permission, model = P.DEPLOYMENT_VIEW, P.DEPLOYMENT_CREATE, Deployment

    def scoped_queryset(self, space):
        return Deployment.objects.filter(environment__space=space).select_related(
            "release__project", "environment", "task"
        )

    @extend_schema(request=r.DeploymentCreateSerializer, responses={201: r.DeploymentSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.DeploymentCreateSerializer).validated_data
        release = _find(Release, space, d["ReleaseId"], "ReleaseId")
        environment = _find(Environment, space, d["EnvironmentId"], "EnvironmentId")
        try:
            deployment = deploy.deploy_release(
                actor=request.user, release=release, environment=environment, use_guided_failure=d["UseGuidedFailure"]
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.CreateDeploymentV1Serializer, responses={201: r.CreateDeploymentV1ResponseSerializer})
    @action(detail=False, methods=["post"], url_path="create/untenanted/v1", pagination_class=None)
    def create_untenanted_v1(self, request, *args, **kwargs):
        """Octopus's CreateDeploymentUntenantedCommandV1: one deployment per environment, all queued or none."""
        space = self.require_edit()
        d = self._input(r.CreateDeploymentV1Serializer).validated_data
        project = _by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        release = project.releases.filter(version=d["ReleaseVersion"]).first()
        if release is None:
            raise ApiValidationError({"ReleaseVersion": [f"{project.name} has no release {d['ReleaseVersion']}."]})
        environments = [
            _by_name(Environment.objects.filter(space=space), name, f"EnvironmentNames[{i}]", "environment")
            for i, name in enumerate(d["EnvironmentNames"])
        ]
        try:
            with transaction.atomic():
                made = [
                    deploy.deploy_release(
                        actor=request.user,
                        release=release,
                        environment=e,
                        use_guided_failure=d.get("UseGuidedFailure", False),
                    )
                    for e in dict.fromkeys(environments)
                ]
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(
            {
                "DeploymentServerTasks": [
                    {"DeploymentId": m.octopus_id, "ServerTaskId": m.task.octopus_id} for m in made
                ]
            },
            status=status.HTTP_201_CREATED,
        )


class RunbookRunViewSet(SpaceScopedViewSet):
    serializer_class = r.RunbookRunSerializer
    item_type = "RunbookRun"
    view_permission, edit_permission, model = P.DEPLOYMENT_VIEW, P.RUNBOOK_RUN, RunbookRun

    def scoped_queryset(self, space):
        return RunbookRun.objects.filter(environment__space=space).select_related(
            "runbook__project", "environment", "task"
        )

    @extend_schema(request=r.RunbookRunCreateSerializer, responses={201: r.RunbookRunSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.RunbookRunCreateSerializer).validated_data
        runbook = Runbook.objects.filter(
            pk=Runbook.pk_from_octopus_id(d["RunbookId"]) or 0, project__space=space
        ).first()
        if runbook is None:
            raise ApiValidationError({"RunbookId": [f"No runbook {d['RunbookId']!r} in this space."]})
        environment = _find(Environment, space, d["EnvironmentId"], "EnvironmentId")
        snapshot = None
        if d.get("RunbookSnapshotId"):
            snapshot = runbook.snapshots.filter(
                pk=RunbookSnapshot.pk_from_octopus_id(d["RunbookSnapshotId"]) or 0
            ).first()
            if snapshot is None:
                raise ApiValidationError(
                    {"RunbookSnapshotId": [f"{runbook.name} has no snapshot {d['RunbookSnapshotId']!r}."]}
                )
        try:
            run = deploy.run_runbook(
                actor=request.user,
                runbook=runbook,
                environment=environment,
                snapshot=snapshot,
                use_guided_failure=d["UseGuidedFailure"],
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.CreateRunbookRunV1Serializer, responses={201: r.CreateRunbookRunV1ResponseSerializer})
    @action(detail=False, methods=["post"], url_path="create/v1", pagination_class=None)
    def create_v1(self, request, *args, **kwargs):
        """Octopus's CreateRunbookRunCommandV1: the published snapshot (or the one named in `Snapshot`), else the
        runbook's process as it is now, in each environment."""
        space = self.require_edit()
        d = self._input(r.CreateRunbookRunV1Serializer).validated_data
        project = _by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        runbook = _by_name(project.runbooks.all(), d["RunbookName"], "RunbookName", "runbook")
        snapshot = runbook.published_snapshot
        if d.get("Snapshot"):
            snapshot = _by_name(runbook.snapshots.all(), d["Snapshot"], "Snapshot", "snapshot")
        environments = [
            _by_name(Environment.objects.filter(space=space), name, f"EnvironmentNames[{i}]", "environment")
            for i, name in enumerate(d["EnvironmentNames"])
        ]
        try:
            with transaction.atomic():
                runs = [
                    deploy.run_runbook(
                        actor=request.user,
                        runbook=runbook,
                        environment=e,
                        snapshot=snapshot,
                        use_guided_failure=d.get("UseGuidedFailure", False),
                    )
                    for e in dict.fromkeys(environments)
                ]
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(
            {
                "RunbookRunServerTasks": [
                    {"RunbookRunId": run.octopus_id, "ServerTaskId": run.task.octopus_id} for run in runs
                ]
            },
            status=status.HTTP_201_CREATED,
        )
