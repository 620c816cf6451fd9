"""An agent registering again (an install-script re-run) keeps its worker: same id, pools, policy,
disabled flag and grants. `Force` takes over a worker of the same name only once the request is valid;
a refused request changes no worker row, no pool membership, no grant and records no event."""

import pytest
from guardian.shortcuts import assign_perm, get_groups_with_perms

from infrastructure.models import MachinePolicy, Worker, WorkerPool
from infrastructure.services import workers
from infrastructure.services.policies import create_machine_policy
from infrastructure.services.pools import create_worker_pool
from portal.models import Event
from portal.services.teams import create_team

OWN, OTHER = "A1" * 20, "B2" * 20
SUBSCRIPTION = "poll://abcdefghij0123456789/"


def registration(
    name="build-01", pools=(), thumbprint=OWN, uri=SUBSCRIPTION, style="TentacleActive", force=False, policy=None
):
    return {
        "Name": name,
        "WorkerPoolIds": [p.octopus_id for p in pools],
        "MachinePolicyId": policy,
        "Force": force,
        "Endpoint": {"CommunicationStyle": style, "Uri": uri, "Thumbprint": thumbprint},
    }


def everything() -> dict:
    """What a user would compare: every worker row, its pools, the object grants, and the audit trail."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    return {
        "workers": list(Worker.objects.order_by("pk").values()),
        "pools": sorted(Worker.worker_pools.through.objects.values_list("worker_id", "workerpool_id")),
        "grants": sorted(GroupObjectPermission.objects.values_list("group_id", "permission__codename", "object_pk"))
        + sorted(UserObjectPermission.objects.values_list("user_id", "permission__codename", "object_pk")),
        "events": Event.objects.count(),
    }


@pytest.fixture
def scene(api_client, administrator, environment_manager, space):
    """A worker an operator has looked after since it first registered: a second pool, its own machine
    policy, disabled for maintenance, and a team granted rights on it."""
    client = api_client(environment_manager)
    default = WorkerPool.objects.get(space=space, is_default=True)
    builders = create_worker_pool(actor=administrator, space=space, name="Builders")
    first = client.post(f"/api/{space.octopus_id}/workers/register", registration(pools=[default]), format="json")
    assert first.status_code == 201, first.json()
    worker = Worker.objects.get(name="build-01")
    policy = create_machine_policy(actor=administrator, space=space, name="Nightly")
    worker.worker_pools.add(builders)
    Worker.objects.filter(pk=worker.pk).update(machine_policy=policy, is_disabled=True)
    team = create_team(actor=administrator, name="Build team", space=space)
    assign_perm("infrastructure.change_worker", team.group, worker)
    worker.refresh_from_db()
    return type(
        "Scene",
        (),
        {
            "client": client,
            "space": space,
            "worker": worker,
            "default": default,
            "builders": builders,
            "policy": policy,
            "team": team,
            "url": f"/api/{space.octopus_id}/workers/register",
        },
    )


def test_registering_again_with_the_same_thumbprint_keeps_the_worker_and_its_settings(scene, administrator, space):
    ops = create_worker_pool(actor=administrator, space=space, name="Ops")
    again = scene.client.post(scene.url, registration(pools=[scene.default, ops]), format="json")
    assert again.status_code == 200, again.json()
    assert again.json()["Id"] == scene.worker.octopus_id
    worker = Worker.objects.get()
    assert worker.pk == scene.worker.pk and worker.is_disabled and worker.machine_policy == scene.policy
    assert set(worker.worker_pools.all()) == {scene.default, scene.builders, ops}  # kept, and the requested one added
    assert list(get_groups_with_perms(worker, attach_perms=True).items()) == [(scene.team.group, ["change_worker"])]
    assert Event.objects.filter(message__contains="registered again by its agent").count() == 1


def test_registering_again_applies_a_requested_policy_and_a_new_name(scene):
    default_policy = MachinePolicy.objects.get(space=scene.space, is_default=True)
    again = scene.client.post(
        scene.url,
        registration(name="build-01.internal", pools=[scene.default], policy=default_policy.octopus_id),
        format="json",
    )
    assert again.status_code == 200, again.json()
    worker = Worker.objects.get()
    assert (worker.pk, worker.name, worker.machine_policy) == (scene.worker.pk, "build-01.internal", default_policy)
    assert worker.is_disabled and set(worker.worker_pools.all()) == {scene.default, scene.builders}


def test_registering_again_from_another_address_keeps_the_worker_and_asks_for_a_health_check(scene):
    Worker.objects.filter(pk=scene.worker.pk).update(health_status="Healthy")
    again = scene.client.post(
        scene.url,
        registration(pools=[scene.default], style="TentaclePassive", uri="https://10.0.0.9:10933/"),
        format="json",
    )
    assert again.status_code == 200, again.json()
    worker = Worker.objects.get()
    assert (worker.pk, worker.communication_style, worker.uri, worker.health_status) == (
        scene.worker.pk,
        "TentaclePassive",
        "https://10.0.0.9:10933/",
        "Unknown",
    )


def test_a_new_certificate_under_a_taken_name_is_refused_without_force(scene):
    before = everything()
    refused = scene.client.post(
        scene.url,
        registration(thumbprint=OTHER, uri="poll://zzzzzzzzzz0123456789/", pools=[scene.default]),
        format="json",
    )
    assert refused.status_code == 400
    assert any(e.startswith("Name: A worker named 'build-01'") and "--force" in e for e in refused.json()["Errors"])
    assert everything() == before


@pytest.mark.parametrize(
    "change,field",
    [
        ({"Name": "x" * 201}, "Name"),
        ({"WorkerPoolIds": ["WorkerPools-999"]}, "WorkerPoolIds"),
        ({"WorkerPoolIds": []}, "WorkerPoolIds"),
        ({"MachinePolicyId": "MachinePolicies-999"}, "MachinePolicyId"),
        (
            {
                "Endpoint": {
                    "CommunicationStyle": "TentacleActive",
                    "Uri": "poll://zzzzzzzzzz0123456789/",
                    "Thumbprint": "not-a-thumbprint",
                }
            },
            "Endpoint.Thumbprint",
        ),
        (
            {"Endpoint": {"CommunicationStyle": "TentacleActive", "Uri": "https://nope/", "Thumbprint": OTHER}},
            "Endpoint.Uri",
        ),
        ({"Endpoint": {"CommunicationStyle": "Ssh", "Host": "h", "Thumbprint": OTHER}}, "Endpoint.CommunicationStyle"),
    ],
)
def test_a_refused_forced_registration_changes_nothing(scene, change, field):
    """The measured failure: `register-worker --force` deleted the worker, then the server refused the
    new registration (a name too long), and the worker was gone."""
    before = everything()
    for thumbprint in (OTHER, OWN):  # another agent taking the name over; the worker's own agent
        body = {
            **registration(
                thumbprint=thumbprint, uri="poll://zzzzzzzzzz0123456789/", pools=[scene.default], force=True
            ),
            **change,
        }
        refused = scene.client.post(scene.url, body, format="json")
        assert refused.status_code == 400, refused.json()
        assert field in refused.json()["Details"], refused.json()
        assert everything() == before


def test_registering_without_permission_changes_nothing(scene, api_client, deployment_creator):
    outsider_client = api_client(deployment_creator)  # creating its API key is an event of its own
    before = everything()
    refused = outsider_client.post(
        scene.url, registration(thumbprint=OTHER, pools=[scene.default], force=True), format="json"
    )
    assert refused.status_code in (403, 404)
    assert everything() == before


def test_force_takes_over_the_named_worker_in_place_once_valid(scene):
    taken = scene.client.post(
        scene.url,
        registration(thumbprint=OTHER, uri="poll://zzzzzzzzzz0123456789/", pools=[scene.default], force=True),
        format="json",
    )
    assert taken.status_code == 200, taken.json()
    worker = Worker.objects.get()
    assert (worker.pk, worker.thumbprint, worker.uri) == (scene.worker.pk, OTHER, "poll://zzzzzzzzzz0123456789/")
    assert worker.is_disabled and worker.machine_policy == scene.policy and worker.health_status == "Unknown"
    assert set(get_groups_with_perms(worker)) == {scene.team.group}


def test_force_lets_an_agents_own_worker_take_a_name_from_another(scene):
    other = scene.client.post(
        scene.url,
        registration(name="spare", thumbprint=OTHER, uri="poll://zzzzzzzzzz0123456789/", pools=[scene.default]),
        format="json",
    ).json()
    refused = scene.client.post(scene.url, registration(name="spare", pools=[scene.default]), format="json")
    assert refused.status_code == 400 and "Name" in refused.json()["Details"]
    taken = scene.client.post(scene.url, registration(name="spare", pools=[scene.default], force=True), format="json")
    assert taken.status_code == 200 and taken.json()["Id"] == scene.worker.octopus_id
    assert list(Worker.objects.values_list("pk", "name")) == [(scene.worker.pk, "spare")]
    assert Event.objects.filter(document_id=other["Id"], category=Event.Category.DELETED).exists()


def test_the_add_worker_page_and_the_plain_api_still_refuse_a_duplicate_name(scene):
    """Only an agent's registration updates by thumbprint; POST /workers creates, as Octopus's does."""
    before = everything()
    refused = scene.client.post(
        f"/api/{scene.space.octopus_id}/workers",
        {**registration(pools=[scene.default]), "IsDisabled": False},
        format="json",
    )
    assert refused.status_code == 400 and "Name" in refused.json()["Details"]
    assert everything() == before


def test_two_new_agents_registering_get_two_workers(api_client, environment_manager, space):
    client = api_client(environment_manager)
    default = WorkerPool.objects.get(space=space, is_default=True)
    url = f"/api/{space.octopus_id}/workers/register"
    assert client.post(url, registration(name="a", pools=[default]), format="json").status_code == 201
    assert (
        client.post(
            url,
            registration(name="b", thumbprint=OTHER, uri="poll://zzzzzzzzzz0123456789/", pools=[default]),
            format="json",
        ).status_code
        == 201
    )
    assert sorted(Worker.objects.values_list("name", flat=True)) == ["a", "b"]


def test_the_service_refuses_an_ssh_endpoint(space, administrator):
    from django.core.exceptions import ValidationError

    from infrastructure.services.workers import Endpoint, WorkerSpec

    with pytest.raises(ValidationError) as error:
        workers.register_tentacle(
            actor=administrator,
            space=space,
            spec=WorkerSpec(name="x", endpoint=Endpoint(communication_style="Ssh", host="h"), worker_pools=[]),
        )
    assert "communication_style" in error.value.message_dict


def test_two_runs_of_one_agent_at_once_leave_one_worker(transactional_db, api_client, environment_manager, space):
    """Two install-script runs racing on one machine: both succeed, and there is still one worker, in both pools."""
    import threading

    from django.db import connection

    default = WorkerPool.objects.get(space=space, is_default=True)
    url = f"/api/{space.octopus_id}/workers/register"
    clients = [api_client(environment_manager) for _ in range(2)]
    assert clients[0].post(url, registration(pools=[default]), format="json").status_code == 201
    first = Worker.objects.get()
    builders = [create_worker_pool(actor=None, space=space, name=f"Pool {n}") for n in range(2)]
    results, start = [], threading.Barrier(2)

    def register(client, pool):
        try:
            start.wait()
            results.append(client.post(url, registration(pools=[pool]), format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=pair) for pair in zip(clients, builders, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [200, 200]
    worker = Worker.objects.get()
    assert worker.pk == first.pk and set(worker.worker_pools.all()) == {default, *builders}
