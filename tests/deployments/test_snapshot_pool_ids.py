"""Snapshots name a worker pool as Octopus does ("WorkerPools-12"), in steps as in variables. Releases stored
before that hold a step's pool as a bare number; they still deploy onto that pool, hold it against deletion, show
its name, and do not look changed."""

import pytest

from deployments.models import Release
from deployments.services import catalog, deploy
from deployments.services.orchestrator import run_server_task
from servertasks.models import ServerTask
from tests.deployments.conftest import log_text


def _old_form(release: Release) -> Release:
    """The release as stored before snapshots used Octopus's ids: each step's pool a bare primary key."""
    steps = [
        {**step, "WorkerPoolId": int(step["WorkerPoolId"].rpartition("-")[2]) if step["WorkerPoolId"] else None}
        for step in release.process_snapshot
    ]
    Release.objects.filter(pk=release.pk).update(process_snapshot=steps)
    release.refresh_from_db()
    return release


@pytest.mark.django_db
def test_a_release_names_its_pools_as_octopus_does(administrator, project, make_pool):
    pool = make_pool("Builders")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    catalog.save_variable(actor=administrator, project=project, name="BuildPool", type="WorkerPool", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project, version="1.0.0")
    assert release.process_snapshot[0]["WorkerPoolId"] == pool.octopus_id
    assert release.variables_snapshot[0]["WorkerPoolId"] == pool.octopus_id


@pytest.mark.django_db
def test_a_release_stored_with_a_bare_pool_number_still_holds_and_shows_its_pool(
    page_client, administrator, project, make_pool, production
):
    pool = make_pool("Linux builders")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    release = _old_form(deploy.create_release(actor=administrator, project=project, version="1.0.0"))
    assert release.process_snapshot[0]["WorkerPoolId"] == pool.pk
    assert catalog.releases_using_pool(pool) == ["release 1.0.0 of Hello (not yet deployed to Production)"]
    assert not deploy.process_changed_since(release)
    assert deploy.pools_used(release.process_snapshot, release.variables_snapshot, project.space, production) == [pool]
    page = (
        page_client(administrator)
        .get(f"/{project.space.octopus_id}/projects/{project.pk}/releases/{release.pk}/")
        .content.decode()
    )
    assert "Run once on a worker · pool Linux builders" in page


def test_a_release_stored_with_a_bare_pool_number_deploys_onto_that_pool(
    agents, administrator, project, make_pool, production
):
    pool = make_pool("Linux builders")
    agents.start("builder-1", [pool])
    catalog.save_step(
        actor=administrator,
        project=project,
        name="Build",
        location="Worker",
        worker_pool=pool,
        script_body="echo built on #{Octopus.WorkerPool.Name}",
    )
    release = _old_form(deploy.create_release(actor=administrator, project=project, version="1.0.0"))
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    run_server_task(task.pk)
    task.refresh_from_db()
    assert task.state == ServerTask.State.SUCCESS, task.error_message
    assert "built on Linux builders" in log_text(task)


@pytest.mark.django_db
def test_a_script_console_task_stored_with_a_bare_pool_number_answers_and_reruns_with_its_pool(
    api_client, administrator, space, make_pool
):
    pool = make_pool("Linux builders")
    task = deploy.run_adhoc_script(
        actor=administrator, space=space, syntax="Bash", script_body="echo hi", worker_pool=pool
    )
    assert task.arguments["Process"][0]["WorkerPoolId"] == pool.octopus_id
    old = {**task.arguments, "Process": [{**task.arguments["Process"][0], "WorkerPoolId": pool.pk}]}
    ServerTask.objects.filter(pk=task.pk).update(arguments=old, state=ServerTask.State.SUCCESS)
    task.refresh_from_db()
    answer = api_client(administrator).get(f"/api/tasks/{task.octopus_id}").json()
    assert answer["Arguments"]["WorkerPoolId"] == pool.octopus_id
    again = deploy.rerun_server_task(actor=administrator, task=task)
    assert again.arguments["Process"][0]["WorkerPoolId"] == pool.octopus_id
