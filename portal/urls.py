from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path, register_converter
from drf_spectacular.utils import extend_schema

from deployments.views import configuration as deployments_configuration
from infrastructure.distribution import BUNDLE_NAME
from infrastructure.views import distribution
from portal.api.views import ApiRootView
from portal.views import configuration as config
from portal.views import pages


class SpaceIdConverter:
    regex = r"Spaces-\d{1,18}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SpaceIdConverter, "space")


def healthz(request):
    return JsonResponse({"Status": "OK"})


handler400 = "portal.api.errors.bad_request"

admin.site.site_header = "Reef administration"
admin.site.site_title = "Reef"

urlpatterns = [
    path("", pages.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", pages.profile, name="profile"),
    path("profile/password/", auth_views.PasswordChangeView.as_view(success_url="/profile/"), name="password-change"),
    path("profile/apikeys/", pages.api_key_create, name="api-key-create"),
    path("profile/apikeys/<int:pk>/revoke/", pages.api_key_revoke, name="api-key-revoke"),
    path("configuration/", config.index, name="configuration"),
    path("configuration/users/", config.user_list, name="configuration-users"),
    path("configuration/users/<int:pk>/", config.user_detail, name="configuration-user"),
    path("configuration/teams/", config.team_list, name="configuration-teams"),
    path("configuration/teams/<int:pk>/", config.team_detail, name="configuration-team"),
    path("configuration/teams/<int:pk>/edit/", config.team_edit, name="configuration-team-edit"),
    path("configuration/teams/<int:pk>/delete/", config.team_delete, name="configuration-team-delete"),
    path("configuration/teams/<int:pk>/members/", config.team_add_member, name="configuration-team-add-member"),
    path(
        "configuration/teams/<int:pk>/members/<int:user_pk>/remove/",
        config.team_remove_member,
        name="configuration-team-remove-member",
    ),
    path("configuration/teams/<int:pk>/roles/", config.team_add_role, name="configuration-team-add-role"),
    path(
        "configuration/teams/<int:pk>/roles/<int:role_pk>/remove/",
        config.team_remove_role,
        name="configuration-team-remove-role",
    ),
    path("configuration/spaces/", config.space_list, name="configuration-spaces"),
    path("configuration/audit/", config.audit, name="configuration-audit"),
    path("configuration/certificate/", config.server_certificate, name="configuration-certificate"),
    path("configuration/features/", deployments_configuration.features, name="configuration-features"),
    path("configuration/nodes/", deployments_configuration.nodes, name="configuration-nodes"),
    path("infrastructure/tentacle/install.sh", distribution.install_sh, name="tentacle-install-script"),
    path(f"infrastructure/tentacle/{BUNDLE_NAME}", distribution.bundle, name="tentacle-bundle"),
    path(f"infrastructure/tentacle/{BUNDLE_NAME}.sha256", distribution.bundle_sha256, name="tentacle-bundle-sha256"),
    path("admin/", admin.site.urls),
    path("api/", include("portal.api.urls")),
    path("api", extend_schema(exclude=True)(ApiRootView).as_view()),
    path("<space:space_id>/infrastructure/", include("infrastructure.urls")),
    path("<space:space_id>/", include("deployments.urls")),
    path("<space:space_id>/", pages.dashboard, name="dashboard"),
]
