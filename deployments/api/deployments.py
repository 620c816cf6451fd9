"""`/api/{spaceId}/environments|projects|releases|deployments|runbookRuns`, and the unscoped aliases for
the default space. Creating a release, a deployment or a runbook run goes through deployments.services.deploy."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import resources as r
from deployments.models import Deployment, Environment, Project, Release, Runbook, RunbookRun
from deployments.services import deploy
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P


def _find(model, space, octopus_id: str, field: str, **scope):
    """The space's object with that id, or a 400 naming the field."""
    found = model.objects.filter(pk=model.pk_from_octopus_id(octopus_id) or 0, **scope).first() if octopus_id else None
    if found is None or found.space_id != space.pk:
        raise ApiValidationError({field: [f"No {model.__name__.lower()} {octopus_id!r} in this space."]})
    return found


class EnvironmentViewSet(SpaceScopedViewSet):
    serializer_class = r.EnvironmentSerializer
    item_type = "Environment"
    view_permission, edit_permission, model = P.ENVIRONMENT_VIEW, P.ENVIRONMENT_EDIT, Environment

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Environment.objects.filter(space=space))


class ProjectViewSet(SpaceScopedViewSet):
    serializer_class = r.ProjectSerializer
    item_type = "Project"
    view_permission, edit_permission, model = P.PROJECT_VIEW, P.PROJECT_EDIT, Project

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Project.objects.filter(space=space))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"], pagination_class=None)
    def deploymentprocesses(self, request, *args, **kwargs):
        from portal.services.access import require_permission

        project = self.get_object()
        require_permission(request.user, P.PROCESS_VIEW, space=project.space)
        steps = [deploy.step_snapshot(step, project.space, pin_packages=False) for step in project.steps.filter(runbook__isnull=True)]
        return Response({"Id": f"deploymentprocess-{project.octopus_id}", "SpaceId": project.space.octopus_id,
                         "ProjectId": project.octopus_id, "Steps": [r.action_resource(step) for step in steps],
                         "Links": {"Self": f"/api/{project.space.octopus_id}/projects/{project.octopus_id}/deploymentprocesses"}})

    @extend_schema(responses=r.ReleaseSerializer(many=True))
    @action(detail=True, methods=["get"])
    def releases(self, request, *args, **kwargs):
        project = self.get_object()
        self.item_type = "Release"
        page = self.paginate_queryset(project.releases.select_related("project"))
        return self.get_paginated_response(r.ReleaseSerializer(page, many=True).data)


class ReleaseViewSet(SpaceScopedViewSet):
    serializer_class = r.ReleaseSerializer
    item_type = "Release"
    view_permission, edit_permission, model = P.RELEASE_VIEW, P.RELEASE_CREATE, Release

    def scoped_queryset(self, space):
        return Release.objects.filter(project__space=space).select_related("project")

    @extend_schema(request=r.ReleaseCreateSerializer, responses={201: r.ReleaseSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.ReleaseCreateSerializer).validated_data
        project = _find(Project, space, d["ProjectId"], "ProjectId")
        try:
            release = deploy.create_release(actor=request.user, project=project, version=d["Version"], release_notes=d["ReleaseNotes"])
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(release).data, status=status.HTTP_201_CREATED)


class DeploymentViewSet(SpaceScopedViewSet):
    serializer_class = r.DeploymentSerializer
    item_type = "Deployment"
    view_permission, edit_permission, model = P.DEPLOYMENT_VIEW, P.DEPLOYMENT_CREATE, Deployment

    def scoped_queryset(self, space):
        return Deployment.objects.filter(environment__space=space).select_related("release__project", "environment", "task")

    @extend_schema(request=r.DeploymentCreateSerializer, responses={201: r.DeploymentSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.DeploymentCreateSerializer).validated_data
        release = _find(Release, space, d["ReleaseId"], "ReleaseId")
        environment = _find(Environment, space, d["EnvironmentId"], "EnvironmentId")
        try:
            deployment = deploy.deploy_release(actor=request.user, release=release, environment=environment,
                                               use_guided_failure=d["UseGuidedFailure"])
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(deployment).data, status=status.HTTP_201_CREATED)


class RunbookRunViewSet(SpaceScopedViewSet):
    serializer_class = r.RunbookRunSerializer
    item_type = "RunbookRun"
    view_permission, edit_permission, model = P.DEPLOYMENT_VIEW, P.RUNBOOK_RUN, RunbookRun

    def scoped_queryset(self, space):
        return RunbookRun.objects.filter(environment__space=space).select_related("runbook__project", "environment", "task")

    @extend_schema(request=r.RunbookRunCreateSerializer, responses={201: r.RunbookRunSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.RunbookRunCreateSerializer).validated_data
        runbook = Runbook.objects.filter(pk=Runbook.pk_from_octopus_id(d["RunbookId"]) or 0, project__space=space).first()
        if runbook is None:
            raise ApiValidationError({"RunbookId": [f"No runbook {d['RunbookId']!r} in this space."]})
        environment = _find(Environment, space, d["EnvironmentId"], "EnvironmentId")
        try:
            run = deploy.run_runbook(actor=request.user, runbook=runbook, environment=environment)
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)
