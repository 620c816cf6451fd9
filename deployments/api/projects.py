"""`/api/{spaceId}/projects` and `/api/{spaceId}/variables`: projects with their deployment process, releases and
channels, and their variable sets. Writes go through deployments.services (catalog, processes)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from deployments.api import processes as pr
from deployments.api import resources as r
from deployments.api.lifecycles import ChannelSerializer
from deployments.api.lifecycles import _find as _find_or_none
from deployments.api.lookups import conflict
from deployments.models import Lifecycle, Project, ProjectGroup
from deployments.services import catalog, lifecycles, processes
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P
from portal.services.access import require_permission


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
