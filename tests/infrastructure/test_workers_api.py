"""Worker pools and workers through the REST API, in Octopus's shapes, with permissions and validation."""

import pytest

from infrastructure.models import Worker, WorkerPool

THUMB = "A" * 40


def listening(name="web-1", pools=None, uri="https://10.0.0.5:10933/", thumbprint=THUMB):
    return {
        "Name": name,
        "WorkerPoolIds": pools or [],
        "IsDisabled": False,
        "Endpoint": {"CommunicationStyle": "TentaclePassive", "Uri": uri, "Thumbprint": thumbprint},
    }


@pytest.fixture
def default_pool(space):
    return WorkerPool.objects.get(space=space, is_default=True)


def test_every_space_gets_a_default_worker_pool_and_machine_policy(api_client, administrator, other_space):
    client = api_client(administrator)
    for space_id in ("Spaces-1", other_space.octopus_id):
        space_id = space_id if space_id != "Spaces-1" else client.get("/api/spaces/all").json()[0]["Id"]
        pools = client.get(f"/api/{space_id}/workerpools/all").json()
        assert [(p["Name"], p["IsDefault"]) for p in pools] == [("Default Worker Pool", True)]
        policies = client.get(f"/api/{space_id}/machinepolicies/all").json()
        assert [(p["Name"], p["IsDefault"]) for p in policies] == [("Default Machine Policy", True)]


def test_a_registered_listening_worker_has_octopus_fields(api_client, environment_manager, space, default_pool):
    client = api_client(environment_manager)
    created = client.post(f"/api/{space.octopus_id}/workers", listening(pools=[default_pool.octopus_id]), format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["Id"].startswith("Workers-") and body["SpaceId"] == space.octopus_id
    assert body["Endpoint"]["CommunicationStyle"] == "TentaclePassive" and body["Endpoint"]["Thumbprint"] == THUMB
    assert body["WorkerPoolIds"] == [default_pool.octopus_id] and body["HealthStatus"] == "Unknown"
    assert body["MachinePolicyId"].startswith("MachinePolicies-")
    assert set(body) >= {"Name", "Thumbprint", "Uri", "IsDisabled", "StatusSummary", "HasLatestCalamari", "Links"}
    assert client.get(f"/api/workers/{body['Id']}").json()["Name"] == "web-1"  # unscoped = default space


def test_polling_and_ssh_workers_register_with_their_endpoints(api_client, administrator, space, default_pool):
    client = api_client(administrator)
    polling = {
        "Name": "poller",
        "WorkerPoolIds": [default_pool.octopus_id],
        "Endpoint": {
            "CommunicationStyle": "TentacleActive",
            "Uri": "poll://abcdefghij0123456789/",
            "Thumbprint": "b" * 40,
        },
    }
    assert client.post("/api/workers", polling, format="json").status_code == 201
    account = client.post(
        "/api/accounts",
        {
            "Name": "deploy",
            "AccountType": "UsernamePassword",
            "Username": "deploy",
            "Password": {"HasValue": True, "NewValue": "s3cret-Value"},
        },
        format="json",
    ).json()
    assert account["Password"] == {"HasValue": True, "NewValue": None}
    ssh = {
        "Name": "bastion",
        "WorkerPoolIds": [default_pool.octopus_id],
        "Endpoint": {
            "CommunicationStyle": "Ssh",
            "Host": "bastion.example.com",
            "Port": 2222,
            "AccountId": account["Id"],
            "Fingerprint": "SHA256:" + "x" * 43,
        },
    }
    body = client.post("/api/workers", ssh, format="json").json()
    assert (
        body["Endpoint"]["Uri"] == "ssh://bastion.example.com:2222/" and body["Endpoint"]["AccountId"] == account["Id"]
    )


@pytest.mark.parametrize(
    "change,field",
    [
        ({"Name": ""}, "Name"),
        ({"WorkerPoolIds": []}, "WorkerPoolIds"),
        ({"WorkerPoolIds": ["WorkerPools-9999"]}, "WorkerPoolIds"),
        (
            {"Endpoint": {"CommunicationStyle": "TentaclePassive", "Uri": "http://x:10933/", "Thumbprint": THUMB}},
            "Endpoint.Uri",
        ),
        (
            {"Endpoint": {"CommunicationStyle": "TentaclePassive", "Uri": "https://x:10933/", "Thumbprint": "nope"}},
            "Endpoint.Thumbprint",
        ),
        (
            {"Endpoint": {"CommunicationStyle": "TentacleActive", "Uri": "poll://Not A Sub/", "Thumbprint": THUMB}},
            "Endpoint.Uri",
        ),
        ({"Endpoint": {"CommunicationStyle": "Ssh", "Host": "h", "Fingerprint": "md5?"}}, "Endpoint.Fingerprint"),
        ({"Endpoint": {"CommunicationStyle": "Carrier pigeon"}}, "Endpoint.CommunicationStyle"),
        ({"MachinePolicyId": "MachinePolicies-9999"}, "MachinePolicyId"),
    ],
)
def test_bad_worker_input_is_a_400_naming_the_field_and_saves_nothing(
    api_client, administrator, default_pool, change, field
):
    body = {**listening(pools=[default_pool.octopus_id]), **change}
    response = api_client(administrator).post("/api/workers", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["Details"], response.json()
    assert not Worker.objects.exists()


def test_a_duplicate_worker_name_is_refused(api_client, administrator, default_pool):
    client = api_client(administrator)
    assert client.post("/api/workers", listening(pools=[default_pool.octopus_id]), format="json").status_code == 201
    again = client.post(
        "/api/workers", listening(pools=[default_pool.octopus_id], uri="https://other:10933/"), format="json"
    )
    assert again.status_code == 400 and "already exists" in again.json()["Details"]["Name"][0]


def test_an_ssh_worker_needs_an_ssh_kind_of_account(api_client, administrator, default_pool):
    client = api_client(administrator)
    token = client.post(
        "/api/accounts", {"Name": "api token", "AccountType": "Token", "Token": {"NewValue": "tok-123"}}, format="json"
    ).json()
    ssh = {
        "Name": "bastion",
        "WorkerPoolIds": [default_pool.octopus_id],
        "Endpoint": {
            "CommunicationStyle": "Ssh",
            "Host": "10.1.2.3",
            "AccountId": token["Id"],
            "Fingerprint": "SHA256:" + "y" * 43,
        },
    }
    response = client.post("/api/workers", ssh, format="json")
    assert response.status_code == 400 and "SSH needs" in response.json()["Details"]["Endpoint.AccountId"][0]


def test_workers_cannot_be_added_to_a_dynamic_pool(api_client, administrator):
    client = api_client(administrator)
    pool = client.post(
        "/api/workerpools",
        {"Name": "Hosted", "WorkerPoolType": "DynamicWorkerPool", "WorkerType": "Ubuntu"},
        format="json",
    ).json()
    response = client.post("/api/workers", listening(pools=[pool["Id"]]), format="json")
    assert response.status_code == 400 and "dynamic" in response.json()["Details"]["WorkerPoolIds"][0]


def test_filters_narrow_the_workers_list(api_client, administrator, default_pool):
    client = api_client(administrator)
    other = client.post("/api/workerpools", {"Name": "Linux"}, format="json").json()
    client.post("/api/workers", listening("a-1", [default_pool.octopus_id]), format="json")
    client.post("/api/workers", listening("b-1", [other["Id"]], uri="https://b:10933/"), format="json")
    Worker.objects.filter(name="b-1").update(health_status="Healthy", is_disabled=True)

    def names(query):
        return [w["Name"] for w in client.get(f"/api/workers?{query}").json()["Items"]]

    assert names(f"workerPoolIds={other['Id']}") == ["b-1"]
    assert names("healthStatuses=Healthy") == ["b-1"]
    assert names("isDisabled=false") == ["a-1"]
    assert names("name=a-") == ["a-1"]
    assert names("communicationStyles=Ssh") == []
    assert client.get("/api/workers?healthStatuses=Sparkly").status_code == 400
    assert [w["Name"] for w in client.get(f"/api/workerpools/{other['Id']}/workers").json()["Items"]] == ["b-1"]


def test_the_pool_summary_counts_workers_by_health(api_client, administrator, default_pool):
    client = api_client(administrator)
    client.post("/api/workers", listening(pools=[default_pool.octopus_id]), format="json")
    Worker.objects.update(health_status="Healthy")
    summary = client.get("/api/workerpools/summary").json()
    assert summary["TotalMachines"] == 1 and summary["MachineHealthStatusSummaries"]["Healthy"] == 1
    assert summary["WorkerPoolSummaries"][0]["MachineHealthStatusSummaries"]["Healthy"] == 1


def test_making_a_pool_default_moves_the_badge_and_the_default_cannot_be_deleted(
    api_client, administrator, default_pool
):
    client = api_client(administrator)
    other = client.post("/api/workerpools", {"Name": "Linux"}, format="json").json()
    assert client.delete(f"/api/workerpools/{default_pool.octopus_id}").status_code == 400
    client.put(f"/api/workerpools/{other['Id']}", {"Name": "Linux", "IsDefault": True}, format="json")
    assert [p["Name"] for p in client.get("/api/workerpools/all").json() if p["IsDefault"]] == ["Linux"]
    assert client.delete(f"/api/workerpools/{default_pool.octopus_id}").status_code == 204


@pytest.mark.parametrize(
    "persona,read,write",
    [
        ("administrator", 200, 201),
        ("space_manager", 200, 201),
        ("environment_manager", 200, 201),
        ("deployment_creator", 403, 403),
        ("project_viewer", 403, 403),
        ("outsider", 404, 404),
    ],
)
def test_worker_permissions_per_role(request, api_client, space, default_pool, persona, read, write):
    client = api_client(request.getfixturevalue(persona))
    assert client.get(f"/api/{space.octopus_id}/workers").status_code == read
    assert client.get(f"/api/{space.octopus_id}/workerpools").status_code == read
    response = client.post(
        f"/api/{space.octopus_id}/workers", listening(pools=[default_pool.octopus_id]), format="json"
    )
    assert response.status_code == write


def test_worker_changes_are_audited(api_client, administrator, default_pool):
    from portal.models import Event

    client = api_client(administrator)
    worker = client.post("/api/workers", listening(pools=[default_pool.octopus_id]), format="json").json()
    client.delete(f"/api/workers/{worker['Id']}")
    assert list(Event.objects.filter(document_id=worker["Id"]).values_list("category", flat=True).order_by("id")) == [
        "Created",
        "Deleted",
    ]


def test_machine_policies_use_octopus_timespans(api_client, administrator):
    client = api_client(administrator)
    body = {
        "Name": "Fast",
        "MachineHealthCheckPolicy": {"HealthCheckInterval": "00:05:00", "HealthCheckType": "OnlyConnectivity"},
        "ConnectionConnectTimeout": "00:00:10",
        "MachineCleanupPolicy": {
            "DeleteMachinesBehavior": "DeleteUnavailableMachines",
            "DeleteMachinesElapsedTimeSpan": "1.00:00:00",
        },
    }
    created = client.post("/api/machinepolicies", body, format="json")
    assert created.status_code == 201, created.json()
    policy = created.json()
    assert policy["MachineHealthCheckPolicy"]["HealthCheckInterval"] == "00:05:00"
    assert policy["ConnectionConnectTimeout"] == "00:00:10"
    assert policy["MachineCleanupPolicy"]["DeleteMachinesElapsedTimeSpan"] == "1.00:00:00"
    bad = client.post(
        "/api/machinepolicies",
        {"Name": "Bad", "MachineHealthCheckPolicy": {"HealthCheckInterval": "soon"}},
        format="json",
    )
    assert bad.status_code == 400 and "MachineHealthCheckPolicy.HealthCheckInterval" in bad.json()["Details"]


def test_account_secrets_are_encrypted_at_rest_and_never_returned(api_client, administrator):
    from infrastructure.models import Account

    client = api_client(administrator)
    created = client.post(
        "/api/accounts",
        {
            "Name": "ops",
            "AccountType": "UsernamePassword",
            "Username": "ops",
            "Password": {"NewValue": "very-secret-pw"},
        },
        format="json",
    )
    assert "very-secret-pw" not in created.content.decode()
    stored = Account.objects.get(name="ops")
    assert "very-secret-pw" not in stored.password_encrypted and stored.password_encrypted
    listed = client.get("/api/accounts").content.decode()
    assert "very-secret-pw" not in listed and stored.password_encrypted not in listed


def test_the_server_certificate_is_public_and_stable(client, db):
    first = client.get("/api/certificates/certificate-global").json()
    assert len(first["Thumbprint"]) == 40 and first["CertificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert client.get("/api/certificates/certificate-global").json()["Thumbprint"] == first["Thumbprint"]
