from rest_framework.routers import SimpleRouter

from deployments.api import deployments as views
from deployments.api import lifecycles
from infrastructure.api.urls import unscoped

router = SimpleRouter(trailing_slash=False)
for name, viewset in [("environments", views.EnvironmentViewSet), ("projects", views.ProjectViewSet),
                      ("releases", views.ReleaseViewSet), ("deployments", views.DeploymentViewSet),
                      ("runbookRuns", views.RunbookRunViewSet), ("runbook-runs", views.RunbookRunViewSet),
                      ("variables", views.VariableSetViewSet), ("projectgroups", lifecycles.ProjectGroupViewSet),
                      ("lifecycles", lifecycles.LifecycleViewSet), ("channels", lifecycles.ChannelViewSet)]:
    router.register(rf"(?P<space_id>Spaces-\d+)/{name}", viewset if name != "runbook-runs" else unscoped(viewset),
                    basename=f"{name}-scoped")
    router.register(name, unscoped(viewset), basename=name)

urlpatterns = router.urls

from django.urls import path  # noqa: E402

from deployments.api.server import DashboardView, ServerStatusView  # noqa: E402

urlpatterns += [
    path("serverstatus", ServerStatusView.as_view(), name="server-status"),
    path("dashboard", DashboardView.as_view(), name="dashboard"),
    path("<space:space_id>/dashboard", DashboardView.as_view(), name="dashboard-scoped"),
]
