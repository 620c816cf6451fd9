"""The deploy API call is on every deployment's path (bench/dispatch.py times it): it takes a small fixed number of
queries, whichever lifecycle promotes the release."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.services import deploy
from deployments.services.lifecycles import PhaseSpec, save_lifecycle
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db

# The API key with its user; the default space; the release with its project and channel; the environment; the
# lifecycle's phases and, as it has none, the space's environments; the pools; the task, its pool, the deployment,
# the event; the transaction's start and end (savepoints here).
READS_AND_WRITES = 13


def _deploy(client, release, environment) -> list[str]:
    body = {"ReleaseId": release.octopus_id, "EnvironmentId": environment.octopus_id}
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/deployments", body, format="json")
    assert response.status_code == 201, response.json()
    return [query["sql"] for query in queries.captured_queries]


def test_a_deployment_through_the_default_lifecycle_stays_within_the_budget(
    api_client, administrator, project, make_pool, production
):
    add_step(project, "Hello", worker_pool=make_pool("Builders"))
    release = deploy.create_release(actor=administrator, project=project)
    client = api_client(administrator)
    _deploy(client, release, production)  # per-process caches warm up
    queries = _deploy(client, release, production)
    assert len(queries) <= READS_AND_WRITES, "\n".join(queries)


def test_a_deployment_through_a_project_lifecycle_with_phases_does_not_read_the_lifecycle(
    api_client, administrator, project, make_pool, staging, production, space
):
    project.lifecycle = save_lifecycle(
        actor=administrator,
        space=space,
        name="Staged",
        phases=[
            PhaseSpec(name="Staging", optional_environments=[staging]),
            PhaseSpec(name="Production", optional_environments=[production]),
        ],
    )
    project.save()
    add_step(project, "Hello", worker_pool=make_pool("Builders"))
    release = deploy.create_release(actor=administrator, project=project)
    client = api_client(administrator)
    _deploy(client, release, staging)
    queries = _deploy(client, release, staging)
    # The phases' automatic and optional environments instead of the space's environments.
    assert len(queries) <= READS_AND_WRITES + 1, "\n".join(queries)
