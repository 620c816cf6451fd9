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
    "/api/serverstatus": EVERYONE,
}

WRITES = [
    # (method, url, body, personas allowed)
    ("post", "/api/{space}/environments", {"Name": "Made"}, {"administrator", "space_manager", "environment_manager"}),
    ("post", "/api/{space}/lifecycles", {"Name": "Made"}, {"administrator", "space_manager", "environment_manager"}),
    ("post", "/api/{space}/projectgroups", {"Name": "Made"}, {"administrator", "space_manager"}),
    ("post", "/api/{space}/projects", {"Name": "Made"}, {"administrator", "space_manager"}),
    ("put", "/api/{space}/projects/{project}/deploymentprocesses", {"Version": 0, "Steps": []}, {"administrator", "space_manager"}),
    ("put", "/api/{space}/variables/variableset-{project}", {"Version": 0, "Variables": []}, {"administrator", "space_manager"}),
    ("post", "/api/{space}/releases/create/v1", {"ProjectName": "Hello", "ReleaseVersion": "9.9.9"}, {"administrator", "space_manager"}),
    ("post", "/api/{space}/deployments/create/untenanted/v1",
     {"ProjectName": "Hello", "ReleaseVersion": "none", "EnvironmentNames": ["Production"]}, set()),
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
def test_writes_are_refused_to_the_roles_that_do_not_grant_them(request, api_client, space, project, production, persona,
                                                                 method, url, body, allowed):
    user = request.getfixturevalue(persona)
    add_step(project, "Hello", "echo hi")
    counts = (Environment.objects.count(), Lifecycle.objects.count(), ProjectGroup.objects.count(), project.process_version)
    response = getattr(api_client(user), method)(url.format(space=space.octopus_id, project=project.octopus_id), body, format="json")
    if persona in allowed:
        assert response.status_code in (200, 201), response.content[:300]
    elif allowed or persona not in PROJECT_READERS | {"environment_manager"}:
        assert response.status_code in (403, 404), response.content[:300]
        project.refresh_from_db()
        assert Environment.objects.count() == counts[0] and ProjectGroup.objects.count() <= counts[2] + 1
        assert project.process_version == counts[3]
    else:  # the deployment below names a release that does not exist: the permission check comes first
        assert response.status_code in (400, 403), response.content[:300]
        if persona not in {"administrator", "space_manager", "deployment_creator"}:
            assert response.status_code == 403
