"""Chromium watches a step's progress bar move as the script calls update_progress, and answers a guided
failure with Retry from the task page; the retried step runs again and the task succeeds."""

import pytest

from deployments.services import deploy
from tests.conftest import PASSWORD
from tests.deployments.conftest import add_step, production, project  # noqa: F401 - fixtures
from tests.e2e.conftest import sign_in
from tests.e2e.test_task_cap import task_runner  # noqa: F401 - fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_progress_moves_live_on_the_page(
    live_reef, page, task_runner, administrator, space, project, production, shared_folder
):  # noqa: F811
    marker = shared_folder / "go"
    add_step(
        project,
        "Copy",
        f'update_progress 30 "Copying"\nwhile [ ! -f {marker} ]; do sleep 0.05; done\n'
        f'update_progress 80 "Nearly"\nwhile [ ! -f {marker}2 ]; do sleep 0.05; done',
    )
    sign_in(page, live_reef, administrator.username, PASSWORD)
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/")
    try:
        page.wait_for_selector(
            "#task-log details[data-progress='30'] .log-node-progress:has-text('30%')", timeout=30000
        )
        marker.touch()
        page.wait_for_selector(
            "#task-log details[data-progress='80'] .log-node-progress:has-text('80%')", timeout=30000
        )
        assert page.inner_text("#log-status") in ("Live", "Live (polling)")
    finally:
        marker.touch()
        (shared_folder / "go2").touch()
    page.wait_for_selector("#log-status:has-text('Complete')", timeout=60000)
    assert (
        page.eval_on_selector_all("#task-log .log-node-progress", "els => els.map(e => e.textContent).join('')") == ""
    )


def test_a_guided_failure_is_answered_with_retry_from_the_page(
    live_reef,
    page,
    task_runner,
    administrator,
    space,  # noqa: F811
    project,
    production,
    shared_folder,
):  # noqa: F811
    production.use_guided_failure = True
    production.save()
    marker = shared_folder / "fixed"
    add_step(project, "Flaky", f'if [ ! -f {marker} ]; then echo "not yet"; exit 2; fi; echo "fixed now"')
    sign_in(page, live_reef, administrator.username, PASSWORD)
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/")
    page.wait_for_selector("#intervention button[value='Retry']", timeout=30000)
    assert "Executing" in page.inner_text("#task-state-box")
    marker.touch()
    page.fill("#intervention input[name='note']", "disk freed")
    page.click("#intervention button[value='Retry']")
    page.wait_for_selector("#task-log .log-line:has-text('fixed now')", timeout=60000)
    page.wait_for_selector("#task-state-box:has-text('Success')", timeout=60000)
    assert page.query_selector("#task-log .log-line:has-text('Administrator chose to retry. disk freed')")
