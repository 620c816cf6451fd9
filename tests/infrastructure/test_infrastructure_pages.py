"""Infrastructure pages: who may see and change what, bad input, the Add Worker wizard, query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from infrastructure.models import Account, Worker, WorkerPool
from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker
from tests.infrastructure.sshd import start_sshd

PAGES = ["workerpools/", "workers/", "machinepolicies/", "accounts/"]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("persona,expected", [("administrator", 200), ("environment_manager", 200), ("space_manager", 200),
                                              ("project_viewer", 403), ("deployment_creator", 403), ("outsider", 404)])
def test_infrastructure_pages_per_role(request, page_client, space, page, persona, expected):
    response = page_client(request.getfixturevalue(persona)).get(f"/{space.octopus_id}/infrastructure/{page}")
    assert response.status_code == expected


def test_an_environment_viewer_sees_pools_but_cannot_add_one(page_client, space, administrator):
    from tests.conftest import make_person

    viewer = make_person("envviewer", "Environment viewer", space)
    client = page_client(viewer)
    page = client.get(f"/{space.octopus_id}/infrastructure/workerpools/")
    assert page.status_code == 200 and "Add worker pool" not in page.content.decode()
    assert client.post(f"/{space.octopus_id}/infrastructure/workerpools/", {"name": "Nope", "pool_type": "StaticWorkerPool"}).status_code == 403
    assert not WorkerPool.objects.filter(name="Nope").exists()


def test_adding_a_pool_with_a_taken_name_is_a_400_and_saves_nothing(page_client, environment_manager, space):
    response = page_client(environment_manager).post(f"/{space.octopus_id}/infrastructure/workerpools/",
                                                     {"name": "Default Worker Pool", "pool_type": "StaticWorkerPool"})
    assert response.status_code == 400 and "already exists" in response.content.decode()
    assert WorkerPool.objects.filter(space=space).count() == 1


def test_deleting_the_default_pool_is_refused_with_a_message(page_client, environment_manager, space):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    response = page_client(environment_manager).post(f"/{space.octopus_id}/infrastructure/workerpools/{pool.pk}/delete/", follow=True)
    assert "cannot be deleted" in response.content.decode() and WorkerPool.objects.filter(pk=pool.pk).exists()


def test_another_spaces_pool_is_a_404(page_client, administrator, space, other_space):
    foreign = WorkerPool.objects.get(space=other_space, is_default=True)
    assert page_client(administrator).get(f"/{space.octopus_id}/infrastructure/workerpools/{foreign.pk}/").status_code == 404


def test_the_wizard_registers_a_listening_worker_and_shows_the_install_command(page_client, environment_manager, space):
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workers/new/linux/listening/"
    page = client.get(url).content.decode()
    assert "install.sh | sudo bash -s -- --server" in page and "--server-thumbprint" in page
    pool = WorkerPool.objects.get(space=space, is_default=True)
    bad = client.post(url, {"name": "web", "worker_pool_ids": [pool.pk], "uri": "http://web:10933/", "thumbprint": "nope"})
    assert bad.status_code == 400 and not Worker.objects.exists()
    assert "https://HOST:10933/" in bad.content.decode()
    good = client.post(url, {"name": "web", "worker_pool_ids": [pool.pk], "uri": "https://web:10933/", "thumbprint": "ab" * 20})
    worker = Worker.objects.get(name="web")
    assert good.status_code == 302 and worker.thumbprint == "AB" * 20


def test_ssh_workers_are_saved_only_after_the_discovered_fingerprint_is_confirmed(page_client, administrator, space, tmp_path):
    from infrastructure.services.accounts import save_account

    sshd = start_sshd(tmp_path / "sshd")
    try:
        account = save_account(actor=administrator, space=space, name="key", account_type="SshKeyPair",
                               username=sshd.username, private_key=sshd.client_private_key)
        client = page_client(administrator)
        url = f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/"
        pool = WorkerPool.objects.get(space=space, is_default=True)
        form = {"name": "box", "worker_pool_ids": [pool.pk], "host": sshd.host, "port": sshd.port, "account_id": account.pk}
        discovered = client.post(url, {**form, "discover": "1"})
        fingerprint = discovered.context["discovered"][1]
        assert discovered.status_code == 200 and fingerprint.startswith("SHA256:") and not Worker.objects.exists()
        unconfirmed = client.post(url, {**form, "fingerprint": fingerprint, "confirm": "1"})
        assert not Worker.objects.exists() and unconfirmed.status_code == 200
        client.post(url, {**form, "fingerprint": fingerprint, "confirm_fingerprint": "on", "confirm": "1"})
        assert Worker.objects.get(name="box").fingerprint == fingerprint
    finally:
        sshd.stop()


def test_an_unreachable_ssh_host_is_a_form_error_not_a_500(page_client, administrator, space):
    from infrastructure.services.accounts import save_account

    account = save_account(actor=administrator, space=space, name="pw", account_type="UsernamePassword", username="u", password="p")
    pool = WorkerPool.objects.get(space=space, is_default=True)
    response = page_client(administrator).post(f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/", {
        "name": "box", "worker_pool_ids": [pool.pk], "host": "127.0.0.1", "port": 1, "account_id": account.pk, "discover": "1"})
    assert response.status_code == 400 and "Could not connect" in response.content.decode()


def test_account_secrets_are_never_rendered_back(page_client, administrator, space):
    client = page_client(administrator)
    client.post(f"/{space.octopus_id}/infrastructure/accounts/", {"name": "ops", "account_type": "UsernamePassword",
                                                                  "username": "ops", "password": "page-secret-pw"})
    assert Account.objects.filter(name="ops").exists()
    page = client.get(f"/{space.octopus_id}/infrastructure/accounts/").content.decode()
    assert "page-secret-pw" not in page and "•••• stored" in page


def test_a_machine_policy_with_a_too_short_interval_is_a_400(page_client, administrator, space):
    response = page_client(administrator).post(f"/{space.octopus_id}/infrastructure/machinepolicies/new/", {
        "name": "Hasty", "health_check_interval": 5, "health_check_type": "RunScript", "connect_timeout": 10, "retry_count": 1,
        "retry_wait": 1, "polling_request_queue_timeout": 60, "connectivity_behavior": "ExpectedToBeOnline",
        "delete_behavior": "DoNotDelete", "delete_after": 3600})
    assert response.status_code == 400 and "health_check_interval" in response.content.decode()


def _add_workers(space, administrator, count: int, start: int = 0):
    pools = [WorkerPool.objects.get(space=space, is_default=True)]
    for n in range(start, start + count):
        register_worker(actor=administrator, space=space, spec=WorkerSpec(name=f"w{n}", worker_pools=pools, endpoint=Endpoint(
            communication_style="TentaclePassive", uri=f"https://w{n}:10933/", thumbprint=f"{n:040X}")))


@pytest.mark.parametrize("page", ["workerpools/", "workers/", "workerpools/{pool}/"])
def test_page_queries_do_not_grow_with_the_number_of_workers(page_client, administrator, space, page):
    client = page_client(administrator)
    url = f"/{space.octopus_id}/infrastructure/" + page.format(pool=WorkerPool.objects.get(space=space, is_default=True).pk)
    _add_workers(space, administrator, 5)
    client.get(url)  # warm caches (sessions, content types)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    _add_workers(space, administrator, 55, start=5)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
