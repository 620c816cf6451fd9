"""Packages travel to a worker only when its cache lacks them; steps with the same packages share a worker."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from deployments.models import Package
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)


def publish(space, package_id: str, version: str, files: dict[str, str]) -> Package:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    folder = Path(settings.VAR_DIR) / "packages"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / sha).write_bytes(data)
    return Package.objects.create(
        space=space,
        package_id=package_id,
        version=version,
        file_name=f"{package_id}.{version}.zip",
        sha256=sha,
        size=len(data),
    )


def test_a_package_is_uploaded_once_then_found_in_the_workers_cache(
    agents, administrator, project, production, make_pool
):
    pool = make_pool("P")
    agents.start("cache-box", [pool])
    publish(project.space, "webapp", "1.0.0", {"VERSION": "1.0.0\n"})
    add_step(
        project, "Install", "cat webapp/VERSION", worker_pool=pool, packages=[{"PackageId": "webapp", "Version": ""}]
    )
    first = deploy_and_run(administrator, project, production)
    second = deploy_and_run(administrator, project, production)
    assert first.state == second.state == "Success", log_text(first)
    assert "Uploading package webapp 1.0.0" in log_text(first) and "1.0.0" in log_text(first).splitlines()
    assert "Uploading package" not in log_text(second)
    assert "Package webapp 1.0.0 is already in cache-box's cache." in log_text(second)


def test_steps_with_the_same_packages_get_the_same_worker(agents, administrator, project, production, make_pool):
    pool = make_pool("P")
    for i in range(3):
        agents.start(f"box-{i}", [pool])
    publish(project.space, "webapp", "2.0.0", {"a.txt": "a"})
    publish(project.space, "tools", "1.0.0", {"b.txt": "b"})
    both = [{"PackageId": "webapp", "Version": ""}, {"PackageId": "tools", "Version": ""}]
    add_step(project, "One", "echo on #{Octopus.Worker.Name}", worker_pool=pool, packages=both)
    add_step(project, "Other", "echo on #{Octopus.Worker.Name}", worker_pool=pool)
    add_step(project, "Two", "echo on #{Octopus.Worker.Name}", worker_pool=pool, packages=both)
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    ran_on = [line.removeprefix("on ") for line in log.splitlines() if line.startswith("on box-")]
    assert ran_on[0] == ran_on[2] != ran_on[1]
    assert "it runs step 'One', which references the same packages (its package cache)" in log


def test_a_release_pins_the_latest_package_version_when_it_is_created(agents, administrator, project, production):
    publish(project.space, "webapp", "1.0.0", {"VERSION": "one\n"})
    add_step(project, "Show", "cat webapp/VERSION", packages=[{"PackageId": "webapp", "Version": ""}])
    from deployments.services import deploy

    release = deploy.create_release(actor=administrator, project=project)
    publish(project.space, "webapp", "1.1.0", {"VERSION": "one point one\n"})
    assert release.process_snapshot[0]["Packages"][0]["Version"] == "1.0.0"
    later = deploy_and_run(administrator, project, production)
    assert "one point one" in log_text(later)
