"""No request to a deployments page, however malformed, answers 500: every URL, GET and a garbage POST."""

import pytest
from django.urls import URLPattern

from deployments import urls
from deployments.services import deploy
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db

GARBAGE = {
    "name": "x" * 5000,
    "environment": "not-a-number",
    "version": "../../etc",
    "type": "Nope",
    "worker_pool": "-1",
    "environments": ["abc"],
    "location": "Moon",
    "max_parallelism": "-7",
    "result": "Maybe",
    "syntax": "Cobol",
    "script_body": "\x00",
    "package_id": "",
    "file": "not a file",
    "teams": ["x"],
    "note": "\x00",
}


def test_every_deployments_page_survives_garbage(page_client, administrator, project, production, space):
    step = add_step(project, "Hello", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    from deployments.models import Runbook

    runbook = Runbook.objects.create(project=project, name="R")
    objects = {
        "task": task.pk,
        "step": step.pk,
        "release": release.pk,
        "runbook": runbook.pk,
        "environment": production.pk,
        "project": project.pk,
    }
    client = page_client(administrator)
    checked = 0
    for pattern in urls.urlpatterns:
        if not isinstance(pattern, URLPattern):
            continue
        name = pattern.name or ""
        pk = next(
            (value for kind, value in objects.items() if name.startswith(kind) or name.startswith(f"runbook-{kind}")), 1
        )
        path = (
            (f"/{space.octopus_id}/" + str(pattern.pattern))
            .replace("<int:project_pk>", str(project.pk))
            .replace("<int:runbook_pk>", str(runbook.pk))
            .replace("<int:artifact_pk>", "1")
            .replace("<str:direction>", "up")
            .replace("<int:pk>", str(pk))
        )
        for response in (client.get(path), client.post(path, GARBAGE)):
            assert response.status_code < 500, (path, response.status_code)
        checked += 1
    assert checked > 20
