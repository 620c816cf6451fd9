from django.urls import path
from rest_framework.routers import SimpleRouter

from infrastructure.api import views


def unscoped(viewset):
    """The default space's alias of a space-scoped route, as Octopus serves it (documented too)."""
    return type(f"Unscoped{viewset.__name__}", (viewset,), {})


router = SimpleRouter(trailing_slash=False)
for name, viewset in [
    ("workerpools", views.WorkerPoolViewSet),
    ("workers", views.WorkerViewSet),
    ("machinepolicies", views.MachinePolicyViewSet),
    ("accounts", views.AccountViewSet),
]:
    router.register(rf"(?P<space_id>Spaces-\d+)/{name}", viewset, basename=f"{name}-scoped")
    router.register(name, unscoped(viewset), basename=name)

urlpatterns = [
    path("certificates/certificate-global", views.ServerCertificateView.as_view(), name="server-certificate"),
    *router.urls,
]
