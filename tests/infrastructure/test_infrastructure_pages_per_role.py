"""Who may see and change the infrastructure pages: WorkerView to look, WorkerEdit to change;
machine policies and accounts have their own permissions; another space's objects do not exist."""

import pytest

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services.accounts import save_account
from tests.conftest import listening_worker, make_person

VIEW_PAGES = [
    "workerpools/",
    "workerpools/{pool}/",
    "workers/",
    "workers/{worker}/",
    "machinepolicies/",
    "machinepolicies/{policy}/",
    "accounts/",
    "accounts/{account}/",
]


@pytest.fixture
def objects(space, administrator):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    worker = listening_worker(administrator, space, "web-01", [pool])
    account = save_account(
        actor=administrator, space=space, name="ops", account_type="UsernamePassword", username="ops", password="pw"
    )
    return {
        "pool": pool.pk,
        "worker": worker.pk,
        "policy": MachinePolicy.objects.get(space=space, is_default=True).pk,
        "account": account.pk,
    }


@pytest.fixture
def project_contributor(space, administrator):
    return make_person("contributor", "Project contributor", space)  # WorkerView, nothing else of infrastructure


@pytest.fixture
def environment_viewer(space, administrator):
    return make_person("envviewer", "Environment viewer", space)


@pytest.mark.parametrize(
    "persona,expected",
    [
        ("administrator", 200),
        ("space_manager", 200),
        ("environment_manager", 200),
        ("deployment_creator", 403),
        ("project_viewer", 403),
        ("outsider", 404),
    ],
)
def test_each_page_answers_each_persona_as_their_role_allows(request, page_client, space, objects, persona, expected):
    client = page_client(request.getfixturevalue(persona))
    for page in VIEW_PAGES:
        url = f"/{space.octopus_id}/infrastructure/" + page.format(**objects)
        assert client.get(url).status_code == expected, url


def test_the_infrastructure_link_leads_to_the_worker_pools(page_client, environment_manager, space):
    response = page_client(environment_manager).get(f"/{space.octopus_id}/infrastructure/")
    assert response.status_code == 302 and response["Location"].endswith("/infrastructure/workerpools/")


def test_a_project_contributor_sees_workers_but_changes_nothing(page_client, project_contributor, space, objects):
    client = page_client(project_contributor)
    base = f"/{space.octopus_id}/infrastructure/"
    pools_page = client.get(base + "workerpools/").content.decode()
    assert "Add worker pool" not in pools_page and "Move " not in pools_page
    worker_page = client.get(base + f"workers/{objects['worker']}/").content.decode()
    assert "web-01" in worker_page and "Check health now" not in worker_page
    assert client.get(base + "workers/new/").status_code == 403
    assert client.get(base + "workers/new/linux/listening/").status_code == 403
    assert client.get(base + f"workers/{objects['worker']}/edit/").status_code == 403
    # Without MachinePolicyView and AccountView, those pages are closed to them.
    assert client.get(base + "machinepolicies/").status_code == 403
    assert client.get(base + "accounts/").status_code == 403
    writes = [
        ("workerpools/", {"name": "Nope", "pool_type": "StaticWorkerPool"}),
        (f"workerpools/{objects['pool']}/", {"name": "Renamed"}),
        (f"workerpools/{objects['pool']}/move/down/", {}),
        (f"workerpools/{objects['pool']}/delete/", {}),
        (f"workers/{objects['worker']}/health/", {}),
        (f"workers/{objects['worker']}/disable/", {}),
        (f"workers/{objects['worker']}/delete/", {}),
        (
            "workers/new/linux/listening/",
            {
                "name": "sneaky",
                "worker_pool_ids": [objects["pool"]],
                "uri": "https://sneaky:10933/",
                "thumbprint": "B" * 40,
            },
        ),
    ]
    for page, data in writes:
        assert client.post(base + page, data).status_code == 403, page
    assert (
        WorkerPool.objects.filter(space=space).count() == 1
        and WorkerPool.objects.get(pk=objects["pool"]).name == "Default Worker Pool"
    )
    assert list(Worker.objects.values_list("name", "is_disabled")) == [("web-01", False)]


def test_an_environment_viewer_reads_policies_and_accounts_but_cannot_change_them(
    page_client, environment_viewer, space, objects
):
    client = page_client(environment_viewer)
    base = f"/{space.octopus_id}/infrastructure/"
    policy_page = client.get(base + f"machinepolicies/{objects['policy']}/").content.decode()
    assert "Default Machine Policy" in policy_page and "disabled" in policy_page and ">Save<" not in policy_page
    assert client.get(base + "machinepolicies/new/").status_code == 403
    assert client.post(base + f"machinepolicies/{objects['policy']}/", {"name": "Changed"}).status_code == 403
    assert "Add account" not in client.get(base + "accounts/").content.decode()
    assert client.post(base + "accounts/", {"name": "x", "account_type": "Token", "password": "t"}).status_code == 403
    assert client.post(base + f"accounts/{objects['account']}/delete/").status_code == 403
    assert MachinePolicy.objects.get(pk=objects["policy"]).name == "Default Machine Policy"
    assert list(Account.objects.values_list("name", flat=True)) == ["ops"]


def test_an_environment_manager_may_change_infrastructure(page_client, environment_manager, space, objects):
    client = page_client(environment_manager)
    base = f"/{space.octopus_id}/infrastructure/"
    assert client.post(base + "workerpools/", {"name": "Builders", "pool_type": "StaticWorkerPool"}).status_code == 302
    assert client.post(base + f"workers/{objects['worker']}/disable/").status_code == 302
    assert (
        WorkerPool.objects.filter(space=space, name="Builders").exists()
        and Worker.objects.get(name="web-01").is_disabled
    )


def test_another_spaces_objects_are_not_found_even_for_an_administrator(page_client, administrator, space, other_space):
    foreign_pool = WorkerPool.objects.get(space=other_space, is_default=True)
    foreign_worker = listening_worker(administrator, other_space, "far", [foreign_pool], thumbprint="C" * 40)
    foreign_policy = MachinePolicy.objects.get(space=other_space, is_default=True)
    foreign_account = save_account(
        actor=administrator, space=other_space, name="far", account_type="Token", password="t"
    )
    client = page_client(administrator)
    base = f"/{space.octopus_id}/infrastructure/"
    for page in [
        f"workerpools/{foreign_pool.pk}/",
        f"workers/{foreign_worker.pk}/",
        f"workers/{foreign_worker.pk}/status/",
        f"workers/{foreign_worker.pk}/edit/",
        f"machinepolicies/{foreign_policy.pk}/",
        f"accounts/{foreign_account.pk}/",
    ]:
        assert client.get(base + page).status_code == 404, page
    for page in [
        f"workerpools/{foreign_pool.pk}/default/",
        f"workers/{foreign_worker.pk}/delete/",
        f"workers/{foreign_worker.pk}/disable/",
        f"accounts/{foreign_account.pk}/delete/",
    ]:
        assert client.post(base + page).status_code == 404, page
    assert Worker.objects.filter(pk=foreign_worker.pk, is_disabled=False).exists()
    assert Account.objects.filter(pk=foreign_account.pk).exists()
