"""Worker pools, machine policies and accounts edited in /admin/ go through their services: validated and
audited as on the pages, with a refusal shown on the form or as a message, never a 500."""

import pytest

from infrastructure.models import Account, MachinePolicy, WorkerPool
from infrastructure.services import accounts, pools
from portal.encryption import decrypt
from portal.models import Event

pytestmark = pytest.mark.django_db

ADMIN = "/admin/infrastructure/"


def test_an_account_renamed_in_the_admin_is_audited_and_keeps_its_secret(page_client, administrator, space):
    account = accounts.save_account(
        actor=administrator,
        space=space,
        name="ops",
        account_type="UsernamePassword",
        username="ops",
        password="hunter2-secret",
    )
    response = page_client(administrator).post(
        f"{ADMIN}account/{account.pk}/change/", {"name": "deploy", "username": "deploy", "description": ""}
    )
    assert response.status_code == 302
    account = Account.objects.get(pk=account.pk)
    assert (account.name, decrypt(account.password_encrypted)) == ("deploy", "hunter2-secret")
    event = Event.objects.filter(document_id=account.octopus_id, category="Modified").get()
    assert event.changes["name"] == ["ops", "deploy"] and "hunter2" not in str(event.changes)


def test_deleting_the_default_pool_in_the_admin_is_refused_with_the_services_reason(page_client, administrator, space):
    default = WorkerPool.objects.get(space=space, is_default=True)
    response = page_client(administrator).post(f"{ADMIN}workerpool/{default.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "The default worker pool cannot be deleted" in response.content.decode()
    assert WorkerPool.objects.filter(pk=default.pk).exists()


def test_a_pool_renamed_in_the_admin_is_audited_as_on_its_page_and_a_taken_name_is_a_form_error(
    page_client, administrator, space
):
    pools.create_worker_pool(actor=administrator, space=space, name="Linux")
    windows = pools.create_worker_pool(actor=administrator, space=space, name="Windows")
    client = page_client(administrator)
    url = f"{ADMIN}workerpool/{windows.pk}/change/"
    response = client.post(url, {"name": "Win", "description": "", "worker_type": "", "sort_order": windows.sort_order})
    assert response.status_code == 302
    renamed = Event.objects.filter(document_id=windows.octopus_id, category="Modified").get()
    assert renamed.changes["name"] == ["Windows", "Win"]  # the service's before and after

    response = client.post(
        url, {"name": "linux", "description": "", "worker_type": "", "sort_order": windows.sort_order}
    )
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert WorkerPool.objects.get(pk=windows.pk).name == "Win"


def test_a_machine_policy_added_in_the_admin_is_validated_and_audited(page_client, administrator, space):
    client = page_client(administrator)
    page = client.get(f"{ADMIN}machinepolicy/add/")
    form = {
        name: field.initial
        for name, field in page.context["adminform"].form.fields.items()
        if field.initial is not None
    }
    form.update(space=space.pk, name="Fast checks", health_check_interval=300)
    response = client.post(f"{ADMIN}machinepolicy/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy = MachinePolicy.objects.get(space=space, name="Fast checks")
    assert Event.objects.filter(document_id=policy.octopus_id, category="Created").exists()

    form.update(name="Too fast", health_check_interval=1)  # the model allows it; the service's limit does not
    response = client.post(f"{ADMIN}machinepolicy/add/", form)
    assert response.status_code == 200
    assert "Must be a whole number from 60 to" in response.content.decode()
    assert not MachinePolicy.objects.filter(name="Too fast").exists()
