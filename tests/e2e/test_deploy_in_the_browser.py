"""A user defines a project in Chromium, deploys it, and reads in the log which worker ran the step."""

import pytest

from tests.conftest import PASSWORD
from tests.deployments.conftest import agents, default_pool, make_pool, production  # noqa: F401 - fixtures
from tests.e2e.conftest import sign_in
from tests.e2e.test_task_cap import task_runner  # noqa: F401 - fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_define_a_project_deploy_it_and_read_the_workers_name(
    live_reef,
    page,
    task_runner,
    agents,
    administrator,
    space,  # noqa: F811
    production,
    make_pool,
    tmp_path,
):  # noqa: F811
    pool = make_pool("Browser workers")
    agents.start("browser-worker-1", [pool])
    sign_in(page, live_reef, administrator.username, PASSWORD)
    page.goto(f"{live_reef}/{space.octopus_id}/projects/")
    page.fill("#add-project #id_name", "Shop")
    page.click("#add-project button")
    page.click("#add-step")
    page.fill("#id_name", "Greet")
    page.check("text=Run once on a worker")
    page.check("text=Runs on a worker from a specific worker pool")
    page.select_option("#id_worker_pool", label="Browser workers")
    assert page.is_hidden("#field-target_roles")  # only for "on behalf of each deployment target"
    page.fill("#id_script_body", 'echo "Hello from #{Octopus.Worker.Name} in #{Octopus.Environment.Name}"')
    page.screenshot(path=str(tmp_path / "step-editor.png"), full_page=True)
    page.click("#save-step")
    assert "Run once on a worker · pool Browser workers" in page.inner_text("#steps")
    page.click("#project-nav >> text=Overview")
    page.click("#create-release")
    page.click("#release-form button[type=submit]")
    page.click("#deploy-release")
    page.select_option("#id_environment", label="Production")
    page.click("#deploy")
    page.wait_for_selector("#task-log:has-text('Hello from browser-worker-1 in Production')", timeout=60000)
    page.wait_for_selector("#task-steps:has-text('browser-worker-1')", timeout=30000)  # refreshed at the end
    log = page.inner_text("#task-log")
    assert "browser-worker-1 was chosen because round-robin among 1 healthy workers of Browser workers" in log
    assert "browser-worker-1" in page.inner_text("#task-steps")
    page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
