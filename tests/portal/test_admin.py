"""Every model is in the Django admin; secrets never appear there."""

import pytest
from django.apps import apps
from django.contrib import admin


def test_every_reef_model_is_registered_in_the_admin():
    missing = [
        m.__name__
        for app in ("portal", "servertasks", "infrastructure", "deployments")
        for m in apps.get_app_config(app).get_models()
        if m not in admin.site._registry
    ]
    assert missing == []


@pytest.mark.parametrize(
    "url",
    [
        "/admin/portal/user/",
        "/admin/portal/team/",
        "/admin/portal/event/?category=Created",
        "/admin/infrastructure/worker/?health_status=Healthy",
        "/admin/infrastructure/workerpool/",
        "/admin/infrastructure/machinepolicy/",
        "/admin/infrastructure/account/",
        "/admin/servertasks/servertask/",
        "/admin/portal/apikey/?q=x",
    ],
)
def test_admin_lists_with_filters_render(page_client, administrator, url):
    assert page_client(administrator).get(url).status_code == 200


def test_an_account_page_in_the_admin_shows_no_secret(page_client, administrator, space):
    from infrastructure.services.accounts import save_account

    account = save_account(
        actor=administrator,
        space=space,
        name="ops",
        account_type="UsernamePassword",
        username="ops",
        password="hunter2-secret",
    )
    page = page_client(administrator).get(f"/admin/infrastructure/account/{account.pk}/change/").content.decode()
    assert "hunter2-secret" not in page and account.password_encrypted not in page


def test_the_admin_action_disables_workers_through_the_service(page_client, administrator, space):
    from infrastructure.models import Worker, WorkerPool
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
    from portal.models import Event

    worker = register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="w",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            endpoint=Endpoint(communication_style="TentaclePassive", uri="https://w:10933/", thumbprint="E" * 40),
        ),
    )
    page_client(administrator).post(
        "/admin/infrastructure/worker/", {"action": "disable", "_selected_action": [worker.pk]}
    )
    assert Worker.objects.get(pk=worker.pk).is_disabled
    assert Event.objects.filter(document_id=worker.octopus_id, message__contains="disabled").exists()


def test_only_system_administrators_rotate_the_server_certificate(page_client, administrator, space_manager):
    from infrastructure.models import ServerCertificate
    from infrastructure.services.certificates import current_server_certificate

    before = current_server_certificate().thumbprint
    assert page_client(space_manager).post("/configuration/certificate/").status_code == 403
    page_client(administrator).post("/configuration/certificate/")
    after = ServerCertificate.objects.get(is_current=True).thumbprint
    assert after != before
    assert after in page_client(administrator).get("/configuration/certificate/").content.decode()
