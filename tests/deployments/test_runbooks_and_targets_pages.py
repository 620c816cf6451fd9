"""Runbooks and deployment targets, through their pages (the built-in feed: test_package_upload.py)."""

import pytest

from deployments.models import DeploymentTarget, Runbook, Step
from deployments.services.orchestrator import run_server_task
from servertasks.models import ServerTask
from tests.deployments.conftest import log_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runbook_gets_its_own_steps_and_runs_against_an_environment(page_client, administrator, project, production):
    client = page_client(administrator)
    space = project.space.octopus_id
    client.post(f"/{space}/projects/{project.pk}/runbooks/add/", {"name": "Restart"})
    runbook = Runbook.objects.get(project=project)
    client.post(
        f"/{space}/projects/{project.pk}/runbooks/{runbook.pk}/steps/add/",
        {
            "name": "Restart it",
            "action_type": "Octopus.Script",
            "location": "Server",
            "syntax": "Bash",
            "script_body": "echo restarting in #{Octopus.Environment.Name} for #{Octopus.Runbook.Name}",
            "condition": "Success",
            "max_parallelism": 10,
        },
    )
    assert Step.objects.get().runbook == runbook and not project.steps.filter(runbook__isnull=True).exists()
    response = client.post(f"/{space}/projects/{project.pk}/runbooks/{runbook.pk}/", {"environment": production.pk})
    task = ServerTask.objects.get()
    assert response["Location"] == f"/{space}/tasks/{task.pk}/" and task.name == "RunbookRun"
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success" and "restarting in Production for Restart" in log_text(task)


def test_a_deployment_target_needs_a_role_and_an_environment(page_client, administrator, space, production):
    client = page_client(administrator)
    bad = client.post(
        f"/{space.octopus_id}/infrastructure/deploymenttargets/",
        {"name": "eu", "kind": "CloudRegion", "roles": " ,", "environments": [production.pk]},
    )
    assert bad.status_code == 400 and 'data-field="roles"' in bad.content.decode()
    assert not DeploymentTarget.objects.exists()
    client.post(
        f"/{space.octopus_id}/infrastructure/deploymenttargets/",
        {"name": "eu", "kind": "CloudRegion", "roles": "web, api", "environments": [production.pk]},
    )
    target = DeploymentTarget.objects.get()
    assert target.roles == ["web", "api"] and list(target.environments.all()) == [production]
