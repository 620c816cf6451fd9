"""`/api/serverstatus` and `/api/{spaceId}/dashboard`, in Octopus's ServerStatusResource and DashboardResource
shapes."""

from __future__ import annotations

from django.db.models import Max
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import Deployment, Environment, Project, ProjectGroup
from deployments.services.lifecycles import default_project_group
from portal.permissions import Permission as P
from portal.services.access import get_space_for_user, require_permission, spaces_visible_to


class ServerStatusView(APIView):
    """What automation checks before it starts: not in maintenance, the database reachable (this answer needs it)."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(
            {
                "Id": "serverstatus",
                "IsDatabaseEncrypted": True,
                "IsMajorMinorUpgrade": False,
                "IsInMaintenanceMode": False,
                "IsUpgradeAvailable": False,
                "MaintenanceExpires": None,
                "MaximumAvailableVersion": None,
                "MaximumAvailableVersionCoveredByLicense": None,
                "Links": {"Self": "/api/serverstatus", "Health": "/healthz"},
            }
        )


def _item(deployment: Deployment, previous: bool = False) -> dict:
    task = deployment.task
    return {
        "Id": f"Dashboard-{deployment.octopus_id}",
        "ProjectId": f"Projects-{deployment.release.project_id}",
        "EnvironmentId": f"Environments-{deployment.environment_id}",
        "ReleaseId": f"Releases-{deployment.release_id}",
        "DeploymentId": deployment.octopus_id,
        "TaskId": task.octopus_id,
        "TenantId": None,
        "ChannelId": f"Channels-{deployment.release.channel_id}" if deployment.release.channel_id else None,
        "ReleaseVersion": deployment.release.version,
        "Created": deployment.created,
        "QueueTime": task.queued,
        "StartTime": task.started,
        "CompletedTime": task.completed,
        "State": task.state,
        "HasPendingInterruptions": bool(task.pending_interruption),
        "HasWarningsOrErrors": task.has_warnings or task.state == "Failed",
        "ErrorMessage": task.error_message,
        "IsCompleted": task.is_completed,
        "IsPrevious": previous,
        "IsCurrent": not previous,
    }


class DashboardView(APIView):
    """The newest deployment of each project to each environment (and the one before it)."""

    @extend_schema(responses={200: dict})
    def get(self, request, space_id: str | None = None):
        if space_id is None:
            default = spaces_visible_to(request.user).filter(is_default=True).first()
            space_id = default.octopus_id if default else "Spaces-0"
        space = get_space_for_user(request.user, space_id)
        require_permission(request.user, P.PROJECT_VIEW, space=space)
        default_project_group(space)
        environments = list(Environment.objects.filter(space=space))
        projects = list(Project.objects.filter(space=space))
        newest = (
            Deployment.objects.filter(environment__space=space)
            .values("release__project_id", "environment_id")
            .annotate(last=Max("id"))
            .values_list("last", flat=True)
        )
        current = list(Deployment.objects.filter(pk__in=list(newest)).select_related("release", "task"))
        previous = []
        for deployment in current:
            before = (
                Deployment.objects.filter(
                    release__project_id=deployment.release.project_id,
                    environment_id=deployment.environment_id,
                    pk__lt=deployment.pk,
                    task__state="Success",
                )
                .select_related("release", "task")
                .order_by("-id")
                .first()
            )
            if before is not None:
                previous.append(before)
        environment_ids = [e.octopus_id for e in environments]
        return Response(
            {
                "Environments": [{"Id": e.octopus_id, "Name": e.name} for e in environments],
                "ProjectGroups": [
                    {"Id": g.octopus_id, "Name": g.name, "EnvironmentIds": environment_ids}
                    for g in ProjectGroup.objects.filter(space=space)
                ],
                "Projects": [
                    {
                        "Id": p.octopus_id,
                        "Name": p.name,
                        "Slug": p.slug,
                        "ProjectGroupId": f"ProjectGroups-{p.project_group_id}",
                        "EnvironmentIds": environment_ids,
                        "IsDisabled": p.is_disabled,
                        "TenantedDeploymentMode": "Untenanted",
                    }
                    for p in projects
                ],
                "Items": [_item(d) for d in current],
                "PreviousItems": [_item(d, previous=True) for d in previous],
                "Tenants": [],
                "IsFiltered": False,
                "Links": {"Self": f"/api/{space.octopus_id}/dashboard"},
            }
        )
