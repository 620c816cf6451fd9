"""In a real browser: add an environment under Infrastructure, a project, and a "Run on the server" script
step through the step editor, whose fields follow the chosen execution location; save it and see it listed."""

import os

import pytest

from deployments.models import Environment, Project, Step
from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_define_an_environment_a_project_and_a_server_step(live_reef, page, administrator, space, tmp_path):
    shots = os.environ.get("REEF_SCREENSHOT_DIR", str(tmp_path))
    sign_in(page, live_reef, "administrator", PASSWORD)
    page.click("nav >> text=Infrastructure")
    page.click("#infrastructure-nav >> text=Environments")
    page.fill("#add-environment #id_name", "Production")
    page.click("#add-environment button[type=submit]")
    assert "Production" in page.inner_text("#environments")

    page.click("nav >> text=Projects")
    page.fill("#add-project #id_name", "Shop")
    page.fill("#add-project #id_description", "The web shop")
    page.click("#add-project button[type=submit]")
    assert page.locator("h1").inner_text() == "Shop"
    page.click("#add-step")
    page.fill("#id_name", "Say hello")
    # The pool fields belong to the worker locations: they hide when the step runs on the server.
    page.check("text=Run once on a worker")
    assert page.is_visible("#field-worker_pool") and page.is_hidden("#field-target_roles")
    page.check("text=Run on a worker on behalf of each deployment target")
    assert page.is_visible("#field-target_roles")
    page.check("text=Run on the server")
    assert page.is_hidden("#field-worker_pool") and page.is_hidden("#field-pool_source")
    page.select_option("#id_syntax", "Bash")
    page.fill("#id_script_body", 'echo "Hello from #{Octopus.Environment.Name}"')
    page.screenshot(path=f"{shots}/pages-step-editor.png", full_page=True)
    page.click("#save-step")
    assert "Step Say hello saved." in page.inner_text("main")
    row = page.locator("#steps li", has_text="Say hello")
    assert "Run on the server" in row.inner_text() and "Bash" in row.inner_text()
    page.screenshot(path=f"{shots}/pages-process.png", full_page=True)

    step = Step.objects.get()
    assert (step.project, step.location, step.worker_pool, step.script_body) == (
        Project.objects.get(name="Shop"),
        "Server",
        None,
        'echo "Hello from #{Octopus.Environment.Name}"',
    )
    assert list(Environment.objects.values_list("name", flat=True)) == ["Production"]
    page.click("#project-nav >> text=Overview")
    assert "Not deployed yet" in page.inner_text("#project-dashboard")
    page.screenshot(path=f"{shots}/pages-overview.png", full_page=True)
