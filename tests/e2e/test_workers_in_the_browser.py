"""In a real browser: create a worker pool, add a listening worker through the wizard, see it listed,
and see its health change on the Workers and Worker Pools pages without reloading them."""

import os

import pytest

from infrastructure.models import Worker
from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_an_administrator_creates_a_pool_and_adds_a_worker_through_the_wizard(
    live_reef, page, administrator, space, tmp_path
):
    shots = os.environ.get("REEF_SCREENSHOT_DIR", str(tmp_path))
    sign_in(page, live_reef, "administrator", PASSWORD)
    page.click("nav >> text=Infrastructure")
    page.fill("#add-workerpool #id_name", "Linux builders")
    page.fill("#add-workerpool #id_description", "Heavy CLI steps")
    page.click("#add-workerpool button[type=submit]")
    assert page.locator("h1").inner_text().startswith("Linux builders")

    page.click("text=Add worker")  # from the pool's page: the wizard carries the pool along
    page.click("#platforms >> text=Linux")
    page.click("#styles >> text=Listening Tentacle")
    command = page.locator("#install-command").input_value()
    assert command.startswith(
        f"curl -fsSL {live_reef}/infrastructure/tentacle/install.sh | sudo bash -s -- --server {live_reef} "
    )
    assert (
        '--workerpool "Linux builders"' in command
        and "--server-thumbprint " + page.locator("#server-thumbprint").inner_text() in command
    )
    page.screenshot(path=f"{shots}/add-worker.png", full_page=True)
    page.fill("#add-worker #id_name", "builder-01")
    page.select_option("#id_worker_pool_ids", label="Linux builders")
    page.fill("#id_uri", "https://builder-01.internal:10933/")
    page.fill("#id_thumbprint", "0123456789ABCDEF0123456789ABCDEF01234567")
    page.click("#add-worker button[type=submit]")
    assert page.locator("h1").inner_text() == "builder-01"
    page.screenshot(path=f"{shots}/worker.png", full_page=True)

    page.click("#infrastructure-nav >> text=Workers")
    row = page.locator("#workers tr", has_text="builder-01")
    assert "Linux builders" in row.inner_text() and "Unknown" in row.inner_text()
    # A health check elsewhere marks it Healthy: the table follows within one polling interval, no reload.
    Worker.objects.filter(name="builder-01").update(health_status=Worker.HealthStatus.HEALTHY)
    row.locator(".badge-health-Healthy").wait_for(timeout=8000)

    page.click("#infrastructure-nav >> text=Worker Pools")
    pool_row = page.locator("#workerpools tr", has_text="Linux builders")
    assert "1 healthy" in pool_row.inner_text()
    page.screenshot(path=f"{shots}/workerpools.png", full_page=True)
