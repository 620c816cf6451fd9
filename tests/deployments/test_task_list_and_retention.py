"""The tasks list's filters, and log retention."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.services import deploy, lifecycles
from servertasks.models import ServerTask
from servertasks.services import logstore
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import apply_log_retention
from tests.deployments.conftest import add_step

pytestmark = pytest.mark.django_db


def test_the_tasks_page_filters_by_project_environment_and_state(
    page_client, administrator, project, production, staging, space
):
    add_step(project, "Hello", "echo hi")
    # One phase holding both environments: either may be deployed to first.
    project.lifecycle = lifecycles.save_lifecycle(
        actor=administrator,
        space=space,
        name="Anywhere",
        phases=[lifecycles.PhaseSpec(name="All", optional_environments=[staging, production])],
    )
    project.save()
    release = deploy.create_release(actor=administrator, project=project)
    deploy.deploy_release(actor=administrator, release=release, environment=production)
    deploy.deploy_release(actor=administrator, release=release, environment=staging)
    client = page_client(administrator)
    page = client.get(
        f"/{space.octopus_id}/tasks/?environment={staging.octopus_id}&project={project.octopus_id}"
    ).content.decode()
    assert "to Staging" in page and "to Production" not in page
    assert "No tasks match these filters" in client.get(f"/{space.octopus_id}/tasks/?states=Success").content.decode()
    assert client.get(f"/{space.octopus_id}/tasks/?fromQueuedDate=yesterday").status_code == 400


def test_logs_past_retention_are_deleted_and_their_tasks_kept(space, settings):
    settings.REEF_TASK_LOG_RETENTION_DAYS = 30
    old = ServerTask.objects.create(
        space=space, name="Health", description="old", state="Success", completed=timezone.now() - timedelta(days=31)
    )
    recent = ServerTask.objects.create(
        space=space, name="Health", description="recent", state="Success", completed=timezone.now()
    )
    for task in (old, recent):
        log = TaskLog(task)
        log.write("a line")
        log.flush()
    assert apply_log_retention() == 1
    assert not logstore.has_log(old.pk) and logstore.has_log(recent.pk)
    assert ServerTask.objects.filter(pk=old.pk).exists()
