"""A pool in use cannot disappear silently: deleting it is refused, naming every step (of the deployment
process or a runbook), Worker Pool variable and release not yet deployed everywhere that refers to it."""

import pytest
from django.core.exceptions import ValidationError

from deployments.services import catalog, deploy
from infrastructure.models import WorkerPool
from infrastructure.services.pools import delete_worker_pool
from servertasks.models import ServerTask

pytestmark = pytest.mark.django_db


def test_deleting_a_pool_names_the_steps_variables_and_releases_that_use_it(
    administrator, project, make_pool, production
):
    pool = make_pool("Builders")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    runbook = catalog.create_runbook(actor=administrator, project=project, name="Restart")
    catalog.save_step(
        actor=administrator,
        project=project,
        runbook=runbook,
        name="Bounce",
        location="Worker",
        worker_pool=pool,
        script_body="systemctl restart app",
    )
    catalog.save_variable(actor=administrator, project=project, name="BuildPool", type="WorkerPool", worker_pool=pool)
    deploy.create_release(actor=administrator, project=project, version="1.0.0")
    with pytest.raises(ValidationError) as refused:
        delete_worker_pool(actor=administrator, pool=pool)
    message = " ".join(refused.value.messages)
    assert "Builders is in use and cannot be deleted" in message
    for referrer in (
        "step Build of the deployment process of Hello",
        "step Bounce of the runbook Restart of Hello",
        "the Worker Pool variable BuildPool of Hello",
        "release 1.0.0 of Hello (not yet deployed to Production)",
    ):
        assert referrer in message
    assert WorkerPool.objects.filter(pk=pool.pk).exists()


def test_the_pool_page_shows_the_refusal(page_client, administrator, environment_manager, project, make_pool):
    pool = make_pool("Builders")
    catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    response = page_client(environment_manager).post(
        f"/{project.space.octopus_id}/infrastructure/workerpools/{pool.pk}/delete/", follow=True
    )
    assert "step Build of the deployment process of Hello" in response.content.decode()
    assert WorkerPool.objects.filter(pk=pool.pk).exists()


def test_a_release_deployed_everywhere_no_longer_holds_the_pool(administrator, project, make_pool, production):
    pool = make_pool("Old builders")
    step = catalog.save_step(
        actor=administrator, project=project, name="Build", location="Worker", worker_pool=pool, script_body="make"
    )
    release = deploy.create_release(actor=administrator, project=project, version="1.0.0")
    catalog.delete_step(actor=administrator, step=step)
    assert catalog.releases_using_pool(pool) == ["release 1.0.0 of Hello (not yet deployed to Production)"]
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    ServerTask.objects.filter(pk=task.pk).update(state=ServerTask.State.SUCCESS)
    assert catalog.releases_using_pool(pool) == []
    delete_worker_pool(actor=administrator, pool=pool)
    assert not WorkerPool.objects.filter(pk=pool.pk).exists()
