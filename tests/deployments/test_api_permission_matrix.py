"""Each built-in role against each endpoint issue 13 added: reads open to the roles that grant them, writes refused
(403, or 404 for an outsider who cannot see the space) to the rest, and nothing changed by a refused write."""

import pytest

from deployments.models import Environment, Lifecycle, ProjectGroup
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db

PERSONAS = ["administrator", "space_manager", "environment_manager", "deployment_creator", "project_viewer", "outsider"]
PROJECT_READERS = {"administrator", "space_manager", "deployment_creator", "project_viewer"}
EVERYONE = set(PERSONAS)

READS = {
    "/api/{space}/projectgroups": PROJECT_READERS,
    "/api/{space}/lifecycles": PROJECT_READERS | {"environment_manager"},
    "/api/{space}/channels": PROJECT_READERS,
    "/api/{space}/runbooks": PROJECT_READERS,
    "/api/{space}/runbookSnapshots": PROJECT_READERS,
    "/api/{space}/projects/{project}/deploymentprocesses": PROJECT_READERS,
    "/api/{space}/projects/{project}/channels": PROJECT_READERS,
    "/api/{space}/variables/variableset-{project}": PROJECT_READERS,
    "/api/{space}/feeds": PROJECT_READERS,
    "/api/{space}/packages": PROJECT_READERS,
    "/api/{space}/dashboard": PROJECT_READERS,
    "/api/{space}/interruptions": PROJECT_READERS | {"environment_manager"},
    "/api/{space}/environments": PROJECT_READERS | {"environment_manager"},
    "/api/{space}/machines": PROJECT_READERS | {"environment_manager"},
    "/api/serverstatus": EVERYONE,
}

SPACE_EDITORS = {"administrator", "space_manager"}
ENVIRONMENT_EDITORS = SPACE_EDITORS | {"environment_manager"}
DEPLOYERS = SPACE_EDITORS | {"deployment_creator"}

WRITES = [
    # (method, url, body, personas the permission check lets through); of those, a body the service refuses is a 400
    ("post", "/api/{space}/environments", {"Name": "Made"}, ENVIRONMENT_EDITORS),
    ("post", "/api/{space}/lifecycles", {"Name": "Made"}, ENVIRONMENT_EDITORS),
    (
        "post",
        "/api/{space}/machines",
        {"Name": "Made", "Roles": ["web"], "EnvironmentIds": [], "Endpoint": {"CommunicationStyle": "None"}},
        ENVIRONMENT_EDITORS,
    ),
    ("post", "/api/{space}/projectgroups", {"Name": "Made"}, SPACE_EDITORS),
    ("post", "/api/{space}/projects", {"Name": "Made"}, SPACE_EDITORS),
    ("put", "/api/{space}/projects/{project}/deploymentprocesses", {"Version": 0, "Steps": []}, SPACE_EDITORS),
    ("put", "/api/{space}/variables/variableset-{project}", {"Version": 0, "Variables": []}, SPACE_EDITORS),
    ("post", "/api/{space}/releases/create/v1", {"ProjectName": "Hello", "ReleaseVersion": "9.9.9"}, SPACE_EDITORS),
    (
        "post",
        "/api/{space}/deployments/create/untenanted/v1",
        {"ProjectName": "Hello", "ReleaseVersion": "none", "EnvironmentNames": ["Production"]},
        DEPLOYERS,
    ),
    ("post", "/api/{space}/packages/raw", {}, SPACE_EDITORS),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("url", list(READS))
def test_reads_are_open_only_to_the_roles_that_grant_them(request, api_client, space, project, persona, url):
    user = request.getfixturevalue(persona)
    response = api_client(user).get(url.format(space=space.octopus_id, project=project.octopus_id))
    if persona in READS[url]:
        assert response.status_code == 200, response.content[:300]
    else:
        assert response.status_code in (403, 404), response.content[:300]
        assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("method, url, body, allowed", WRITES, ids=[f"{m} {u}" for m, u, _, _ in WRITES])
def test_writes_are_refused_to_the_roles_that_do_not_grant_them(
    request, api_client, space, project, production, persona, method, url, body, allowed
):
    user = request.getfixturevalue(persona)
    add_step(project, "Hello", "echo hi")
    before = (
        Environment.objects.count(),
        Lifecycle.objects.count(),
        ProjectGroup.objects.count(),
        project.releases.count(),
    )
    fmt = "multipart" if url.endswith("/raw") else "json"  # a package push is a multipart upload (here with no file)
    response = getattr(api_client(user), method)(
        url.format(space=space.octopus_id, project=project.octopus_id), body, format=fmt
    )
    project.refresh_from_db()
    if persona in allowed:
        assert response.status_code in (200, 201, 400), response.content[:300]  # 400: the service's own refusal
        assert response.status_code != 400 or response.json()["Errors"]
    else:
        assert response.status_code in (403, 404), response.content[:300]
        assert response["Content-Type"].startswith("application/json")
        assert (Environment.objects.count(), Lifecycle.objects.count(), project.releases.count()) == (
            before[0],
            before[1],
            before[3],
        )
        assert project.process_version == 0 and project.variable_set_version == 0
