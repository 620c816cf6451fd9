from django.urls import path
from rest_framework.routers import SimpleRouter

from infrastructure.api import views

router = SimpleRouter(trailing_slash=False)
for prefix in (r"(?P<space_id>Spaces-\d+)/", ""):
    router.register(prefix + "workerpools", views.WorkerPoolViewSet, basename=f"workerpool{'-s' if prefix else ''}")
    router.register(prefix + "workers", views.WorkerViewSet, basename=f"worker{'-s' if prefix else ''}")
    router.register(prefix + "machinepolicies", views.MachinePolicyViewSet, basename=f"machinepolicy{'-s' if prefix else ''}")
    router.register(prefix + "accounts", views.AccountViewSet, basename=f"account{'-s' if prefix else ''}")

urlpatterns = [
    path("certificates/certificate-global", views.ServerCertificateView.as_view(), name="server-certificate"),
    *router.urls,
]
