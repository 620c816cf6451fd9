"""In a real browser, on a server reached on loopback (as `make run` starts it): the polling wizard's
command carries the polling port, and the page says what a worker on a second host needs."""

import os

import pytest

from infrastructure.services.pools import create_worker_pool
from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_the_polling_wizard_shows_the_polling_port_and_the_second_host_advice(
    live_reef, page, administrator, space, tmp_path
):
    create_worker_pool(actor=administrator, space=space, name="Linux builders")
    shots = os.environ.get("REEF_SCREENSHOT_DIR", str(tmp_path))
    sign_in(page, live_reef, "administrator", PASSWORD)
    page.goto(f"{live_reef}/{space.octopus_id}/infrastructure/workers/new/?platform=linux")
    page.click("#styles >> text=Polling Tentacle")

    advice = page.locator("#second-host")
    assert advice.is_visible() and "cannot reach this server yet" in advice.inner_text()
    assert "REEF_BIND=0.0.0.0" in page.locator("#second-host-settings").inner_text()
    assert page.locator("#polling-port").inner_text() == "10943"
    assert (
        page.locator("#install-command").input_value().endswith("--polling --polling-address https://127.0.0.1:10943/")
    )

    page.select_option("#install-pool", label="Linux builders")  # htmx swaps the card: the address stays
    page.wait_for_function("document.getElementById('install-command').value.includes('Linux builders')")
    assert (
        page.locator("#install-command").input_value().endswith("--polling --polling-address https://127.0.0.1:10943/")
    )
    page.screenshot(path=f"{shots}/add-polling-worker.png", full_page=True)
