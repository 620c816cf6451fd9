"""Runbooks, deployment targets and the built-in feed, through their pages."""

import io
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import DeploymentTarget, Package, Runbook, ServerTask, Step
from deployments.services.orchestrator import run_server_task
from tests.deployments.conftest import log_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runbook_gets_its_own_steps_and_runs_against_an_environment(page_client, administrator, project, production):
    client = page_client(administrator)
    space = project.space.octopus_id
    client.post(f"/{space}/projects/{project.pk}/runbooks/add/", {"name": "Restart"})
    runbook = Runbook.objects.get(project=project)
    client.post(f"/{space}/projects/{project.pk}/runbooks/{runbook.pk}/steps/add/", {
        "name": "Restart it", "action_type": "Octopus.Script", "location": "Server", "syntax": "Bash",
        "script_body": "echo restarting in #{Octopus.Environment.Name} for #{Octopus.Runbook.Name}", "condition": "Success",
        "max_parallelism": 10})
    assert Step.objects.get().runbook == runbook and not project.steps.filter(runbook__isnull=True).exists()
    response = client.post(f"/{space}/projects/{project.pk}/runbooks/{runbook.pk}/", {"environment": production.pk})
    task = ServerTask.objects.get()
    assert response["Location"] == f"/{space}/tasks/{task.pk}/" and task.name == "RunbookRun"
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == "Success" and "restarting in Production for Restart" in log_text(task)


def test_a_deployment_target_needs_a_role_and_an_environment(page_client, administrator, space, production):
    client = page_client(administrator)
    bad = client.post(f"/{space.octopus_id}/infrastructure/deploymenttargets/", {"name": "eu", "kind": "CloudRegion", "roles": " ,",
                                                              "environments": [production.pk]})
    assert bad.status_code == 400 and 'data-field="roles"' in bad.content.decode()
    assert not DeploymentTarget.objects.exists()
    client.post(f"/{space.octopus_id}/infrastructure/deploymenttargets/", {"name": "eu", "kind": "CloudRegion", "roles": "web, api",
                                                       "environments": [production.pk]})
    target = DeploymentTarget.objects.get()
    assert target.roles == ["web", "api"] and list(target.environments.all()) == [production]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    return buffer.getvalue()


def _tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"hello"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("name, content", [("app.zip", _zip()), ("app.tar.gz", _tar_gz())])
def test_packages_upload_to_the_built_in_feed(page_client, administrator, space, name, content):
    response = page_client(administrator).post(f"/{space.octopus_id}/library/packages/", {
        "package_id": "app", "version": "1.0.0", "file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302
    package = Package.objects.get()
    assert (package.package_id, package.version, package.size) == ("app", "1.0.0", len(content))


def test_a_file_that_is_not_an_archive_is_refused_and_nothing_is_stored(page_client, administrator, space):
    response = page_client(administrator).post(f"/{space.octopus_id}/library/packages/", {
        "package_id": "app", "version": "1.0.0", "file": SimpleUploadedFile("app.zip", b"not a zip at all")})
    assert response.status_code == 400 and "is not a valid zip archive" in response.content.decode()
    assert not Package.objects.exists()


def test_pushing_packages_needs_the_feed_permission(page_client, project_viewer, space):
    response = page_client(project_viewer).post(f"/{space.octopus_id}/library/packages/", {
        "package_id": "app", "version": "1.0.0", "file": SimpleUploadedFile("app.zip", _zip())})
    assert response.status_code == 403 and not Package.objects.exists()
