"""`/api/{spaceId}/deployments|runbookRuns`: deploying a release and running a runbook, Octopus's way and by the
executions API's V1 commands. Writes go through deployments.services.deploy, as the pages' do.

Environments, projects, variables and releases have modules of their own (environments, projects, releases);
their view sets are importable from here, as they always were."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import resources as r
from deployments.api.environments import EnvironmentViewSet
from deployments.api.lookups import by_name, conflict, find
from deployments.api.projects import ProjectViewSet, VariableSetViewSet
from deployments.api.releases import ReleaseViewSet
from deployments.models import Deployment, Environment, Project, Release, Runbook, RunbookRun, RunbookSnapshot
from deployments.services import deploy
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P

__all__ = [
    "DeploymentViewSet",
    "EnvironmentViewSet",
    "ProjectViewSet",
    "ReleaseViewSet",
    "RunbookRunViewSet",
    "VariableSetViewSet",
    "conflict",
]


RELEASE_RELATED = ("project", "channel")


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
        # What deploy_release reads of the release (its project and channel) comes in one read; the project's space
        # is the request's (find checked it).
        release = find(Release, space, d["ReleaseId"], "ReleaseId", related=RELEASE_RELATED)
        release.project.space = space
        environment = find(Environment, space, d["EnvironmentId"], "EnvironmentId")
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
        project = by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        release = project.releases.filter(version=d["ReleaseVersion"]).first()
        if release is None:
            raise ApiValidationError({"ReleaseVersion": [f"{project.name} has no release {d['ReleaseVersion']}."]})
        environments = [
            by_name(Environment.objects.filter(space=space), name, f"EnvironmentNames[{i}]", "environment")
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
        environment = find(Environment, space, d["EnvironmentId"], "EnvironmentId")
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
        project = by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        runbook = by_name(project.runbooks.all(), d["RunbookName"], "RunbookName", "runbook")
        snapshot = runbook.published_snapshot
        if d.get("Snapshot"):
            snapshot = by_name(runbook.snapshots.all(), d["Snapshot"], "Snapshot", "snapshot")
        environments = [
            by_name(Environment.objects.filter(space=space), name, f"EnvironmentNames[{i}]", "environment")
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
