"""Machine Policies: list, add, edit; the service's limits come back as field errors; in-use policies stay."""

import re

import pytest

from infrastructure.models import MachinePolicy, Worker, WorkerPool
from infrastructure.services.policies import create_machine_policy
from tests.conftest import listening_worker

VALID = {
    "name": "Nightly",
    "description": "",
    "health_check_interval": 86400,
    "health_check_type": "OnlyConnectivity",
    "bash_health_check_script": "",
    "connect_timeout": 30,
    "retry_count": 2,
    "retry_wait": 5,
    "polling_request_queue_timeout": 120,
    "connectivity_behavior": "MayBeOfflineAndCanBeSkipped",
    "delete_behavior": "DeleteUnavailableMachines",
    "delete_after": 7 * 86400,
}


@pytest.fixture
def base(space):
    return f"/{space.octopus_id}/infrastructure/machinepolicies/"


def test_the_list_shows_each_policy_and_how_many_workers_use_it(
    page_client, environment_manager, administrator, space, base
):
    create_machine_policy(actor=administrator, space=space, name="Nightly", health_check_interval=86400)
    html = page_client(environment_manager).get(base).content.decode()
    assert "Default Machine Policy" in html and ">default</span>" in html and "every 86400 s" in html


def test_the_add_form_starts_from_the_defaults(page_client, environment_manager, base):
    html = page_client(environment_manager).get(base + "new/").content.decode()
    assert 'name="health_check_interval" value="3600"' in html and 'name="connect_timeout" value="60"' in html


def test_an_environment_manager_adds_a_policy(page_client, environment_manager, space, base):
    response = page_client(environment_manager).post(base + "new/", VALID)
    policy = MachinePolicy.objects.get(space=space, name="Nightly")
    assert response.status_code == 302
    assert (policy.health_check_interval, policy.delete_behavior, policy.delete_after) == (
        86400,
        "DeleteUnavailableMachines",
        604800,
    )


@pytest.mark.parametrize(
    "changes,field,message",
    [
        ({"health_check_interval": 5}, "health_check_interval", "Must be a whole number from 60 to"),
        ({"connect_timeout": 0}, "connect_timeout", "Must be a whole number from 1 to 3600"),
        ({"name": "default machine policy"}, "name", "already exists"),
        ({"retry_count": "many"}, "retry_count", "Enter a whole number"),
    ],
)
def test_bad_values_are_a_400_with_the_error_on_the_field_and_nothing_saved(
    page_client, environment_manager, space, base, changes, field, message
):
    response = page_client(environment_manager).post(base + "new/", {**VALID, **changes})
    assert response.status_code == 400
    assert re.search(rf'data-field="{field}">[^<]*{message}', response.content.decode())
    assert MachinePolicy.objects.filter(space=space).count() == 1


def test_editing_a_policy_saves_it(page_client, environment_manager, space, base):
    policy = MachinePolicy.objects.get(space=space, is_default=True)
    assert (
        page_client(environment_manager)
        .post(base + f"{policy.pk}/", {**VALID, "name": "Default Machine Policy"})
        .status_code
        == 302
    )
    policy.refresh_from_db()
    assert (policy.name, policy.health_check_interval, policy.is_default) == ("Default Machine Policy", 86400, True)


def test_a_policy_in_use_is_not_deleted_and_the_page_says_who_uses_it(
    page_client, environment_manager, administrator, space, base
):
    policy = create_machine_policy(actor=administrator, space=space, name="Nightly")
    default_pool = WorkerPool.objects.get(space=space, is_default=True)
    listening_worker(administrator, space, "web-01", [default_pool], machine_policy=policy)
    response = page_client(environment_manager).post(base + f"{policy.pk}/delete/", follow=True)
    assert "Nightly is used by these workers: web-01." in response.content.decode()
    assert MachinePolicy.objects.filter(pk=policy.pk).exists() and Worker.objects.get().machine_policy == policy


def test_the_configuration_page_links_to_the_spaces_machine_policies(page_client, administrator, space, base):
    assert base in page_client(administrator).get("/configuration/").content.decode()
