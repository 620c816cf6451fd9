from rest_framework.routers import SimpleRouter

from deployments.api import deployments as views
from infrastructure.api.urls import unscoped

router = SimpleRouter(trailing_slash=False)
for name, viewset in [("environments", views.EnvironmentViewSet), ("projects", views.ProjectViewSet),
                      ("releases", views.ReleaseViewSet), ("deployments", views.DeploymentViewSet),
                      ("runbookRuns", views.RunbookRunViewSet)]:
    router.register(rf"(?P<space_id>Spaces-\d+)/{name}", viewset, basename=f"{name}-scoped")
    router.register(name, unscoped(viewset), basename=name)

urlpatterns = router.urls
