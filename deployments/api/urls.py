from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api import deployments, environments, lifecycles, machines, packages, projects, releases, runbooks
from deployments.api.server import DashboardView, ServerStatusView
from infrastructure.api.urls import unscoped

SPACE = r"(?P<space_id>Spaces-\d+)/"
PROJECT = r"projects/(?P<project_id>[^/]+)/"

router = SimpleRouter(trailing_slash=False)
for name, viewset in [
    ("environments", environments.EnvironmentViewSet),
    ("projects", projects.ProjectViewSet),
    ("releases", releases.ReleaseViewSet),
    ("deployments", deployments.DeploymentViewSet),
    ("runbookRuns", deployments.RunbookRunViewSet),
    ("runbook-runs", deployments.RunbookRunViewSet),
    ("variables", projects.VariableSetViewSet),
    ("projectgroups", lifecycles.ProjectGroupViewSet),
    ("lifecycles", lifecycles.LifecycleViewSet),
    ("channels", lifecycles.ChannelViewSet),
    ("runbooks", runbooks.RunbookViewSet),
    ("runbookSnapshots", runbooks.RunbookSnapshotViewSet),
    ("interruptions", runbooks.InterruptionViewSet),
    ("feeds", packages.FeedViewSet),
    ("packages", packages.PackageViewSet),
    ("machines", machines.MachineViewSet),
    (PROJECT + "runbooks", runbooks.RunbookViewSet),
    (PROJECT + "runbookProcesses", runbooks.RunbookProcessViewSet),
    (PROJECT + "runbookSnapshots", runbooks.RunbookSnapshotViewSet),
]:
    # The schema documents each resource once, space-scoped; aliases (unscoped, runbook-runs) are left out of it.
    documented = name != "runbook-runs"
    basename = name.replace(PROJECT, "project-").replace("/", "-")
    router.register(SPACE + name, viewset if documented else unscoped(viewset), basename=f"{basename}-scoped")
    router.register(name, unscoped(viewset), basename=basename)

urlpatterns = router.urls + [
    path("serverstatus", ServerStatusView.as_view(), name="server-status"),
    path("dashboard", unscoped(DashboardView).as_view(), name="dashboard"),
    path("<space:space_id>/dashboard", DashboardView.as_view(), name="dashboard-scoped"),
]
