"""`/api/{spaceId}/releases`: creating releases (`POST /releases` and CreateReleaseCommandV1), a release's
deployment template and its deployments. Writes go through deployments.services.deploy."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import resources as r
from deployments.api.lifecycles import _find as _find_or_none
from deployments.api.lookups import by_name, find
from deployments.models import Channel, Project, Release
from deployments.services import deploy, lifecycles
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P
from portal.services.access import require_permission


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
        project = find(Project, space, d["ProjectId"], "ProjectId")
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
        project = by_name(Project.objects.filter(space=space), d["ProjectName"], "ProjectName", "project")
        channel = (
            by_name(project.channels.all(), d["ChannelName"], "ChannelName", "channel")
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
