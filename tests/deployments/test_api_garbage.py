"""Garbage sent to every write endpoint issue 13 added: JSON back, never a 5xx (a body that happens to be valid for
an endpoint may succeed; the rest are refused with a 4xx)."""

import pytest

from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db

GARBAGE = [
    [],
    "text",
    12,
    None,
    {"Name": None},
    {"Name": ["x"]},
    {"Name": "x" * 5000},
    {"Name": "a\x00b"},
    {"Steps": "x", "Version": "1"},
    {"Steps": [1, "two", None], "Version": 0},
    {"Version": 2**40, "Steps": []},
    {
        "Steps": [
            {"Name": "s", "Actions": [{"ActionType": 5, "Properties": {"Octopus.Action.Script.ScriptBody": ["x"]}}]}
        ],
        "Version": 0,
    },
    {
        "Steps": [
            {
                "Name": "s\x00",
                "Properties": {"Octopus.Action.MaxParallelism": "99999999999999999999"},
                "Actions": [{"WorkerPoolId": 7, "Packages": [{"PackageId": "p" * 300}]}],
            }
        ],
        "Version": 0,
    },
    {"Variables": [{"Name": "v", "Value": "a\x00", "Scope": {"Environment": "Environments-1"}}], "Version": 0},
    {"Variables": [{"Name": "v", "Type": "WorkerPool", "Value": "WorkerPools-99999999999999999999"}], "Version": 0},
    {
        "Phases": [
            {
                "Name": "p",
                "OptionalDeploymentTargets": ["Environments-999999999999999999"],
                "MinimumEnvironmentsBeforePromotion": 5,
            }
        ],
        "Name": "L",
    },
    {"ProjectName": "nope", "ReleaseVersion": "1", "EnvironmentNames": [None]},
    {"ProjectName": "Hello", "ReleaseVersion": "1", "Packages": ["nocolon", ":1.0", "x:"]},
    {"ProjectName": "Hello", "RunbookName": "nope", "EnvironmentNames": ["Production"]},
    {"Result": "Proceed", "Notes": 5},
    {"ProjectId": "Projects-999999999999999999999", "Name": "c"},
    {"Name": "m", "Roles": ["bad role!"], "EnvironmentIds": ["x"], "Endpoint": {"CommunicationStyle": "Ssh"}},
]

ENDPOINTS = [
    ("post", "/api/environments"),
    ("post", "/api/projects"),
    ("put", "/api/projects/{project}"),
    ("put", "/api/projects/{project}/deploymentprocesses"),
    ("put", "/api/variables/variableset-{project}"),
    ("post", "/api/lifecycles"),
    ("post", "/api/projectgroups"),
    ("post", "/api/channels"),
    ("post", "/api/releases"),
    ("post", "/api/releases/create/v1"),
    ("post", "/api/deployments"),
    ("post", "/api/deployments/create/untenanted/v1"),
    ("post", "/api/runbookRuns/create/v1"),
    ("post", "/api/runbook-runs/create/v1"),
    ("post", "/api/runbooks"),
    ("post", "/api/runbookSnapshots?publish=maybe"),
    ("post", "/api/machines"),
    ("put", "/api/environments/sortorder"),
    ("put", "/api/workerpools/sortorder"),
    ("post", "/api/tasks/rerun/ServerTasks-99999999999999999999"),
    ("post", "/api/interruptions/Interruptions-1/submit"),
    ("post", "/api/packages/raw?overwriteMode=Sometimes"),
]


@pytest.mark.parametrize("method, url", ENDPOINTS, ids=[f"{m} {u}" for m, u in ENDPOINTS])
def test_garbage_never_gets_a_5xx(api_client, administrator, project, production, method, url):
    add_step(project, "Hello", "echo hi")
    client = api_client(administrator)
    for body in GARBAGE:
        response = getattr(client, method)(url.format(project=project.octopus_id), body, format="json")
        assert response.status_code < 500, (body, response.status_code, response.content[:300])
        if response.status_code != 204:
            assert response["Content-Type"].startswith("application/json"), (body, response.content[:200])
        if response.status_code == 400:
            assert response.json()["Errors"], body
