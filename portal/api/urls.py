from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from deployments.api.views import ServerTaskViewSet
from portal.api import views

router = SimpleRouter(trailing_slash=False)
router.register("spaces", views.SpaceViewSet, basename="space")
router.register("users", views.UserViewSet, basename="user")
router.register(r"users/(?P<user_id>[^/]+)/apikeys", views.ApiKeyViewSet, basename="apikey")
router.register("userroles", views.UserRoleViewSet, basename="userrole")
router.register("teams", views.TeamViewSet, basename="team")
router.register("scopeduserroles", views.ScopedUserRoleViewSet, basename="scopeduserrole")
router.register("events", views.EventViewSet, basename="event")
router.register("tasks", ServerTaskViewSet, basename="task")
router.register(
    r"(?P<space_id>Spaces-\d+)/tasks", type("ScopedServerTaskViewSet", (ServerTaskViewSet,), {}), basename="task-s"
)

urlpatterns = [
    path("", views.ApiRootView.as_view(), name="api-root"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("schema/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
    path("", include("infrastructure.api.urls")),
    path("", include("deployments.api.urls")),
]
