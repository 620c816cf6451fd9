"""In a real browser: create a worker pool, add a listening worker through the wizard, see it listed."""

import os

import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_an_administrator_creates_a_pool_and_adds_a_worker_through_the_wizard(live_reef, page, administrator, space, tmp_path):
    shots = os.environ.get("REEF_SCREENSHOT_DIR", str(tmp_path))
    sign_in(page, live_reef, "administrator", PASSWORD)
    page.click("nav >> text=Infrastructure")
    page.fill("#id_name", "Linux builders")
    page.fill("#id_description", "Heavy CLI steps")
    page.click("#add-workerpool button[type=submit]")
    assert page.locator("h1").inner_text().startswith("Linux builders")

    page.click("text=Add worker")
    page.click("#platforms >> text=Linux")
    page.click("#styles >> text=Listening Tentacle")
    assert "install.sh | sudo bash -s --" in page.locator("#install-command").input_value()
    page.screenshot(path=f"{shots}/add-worker.png", full_page=True)
    page.fill("#id_name", "builder-01")
    page.select_option("#id_worker_pool_ids", label="Linux builders")
    page.fill("#id_uri", "https://builder-01.internal:10933/")
    page.fill("#id_thumbprint", "0123456789ABCDEF0123456789ABCDEF01234567")
    page.click("#add-worker button[type=submit]")
    assert page.locator("h1").inner_text() == "builder-01"
    page.screenshot(path=f"{shots}/worker.png", full_page=True)

    page.click("text=Workers")
    row = page.locator("#workers tr", has_text="builder-01")
    assert row.count() == 1 and "Linux builders" in row.inner_text() and "Unknown" in row.inner_text()
    page.click("text=Worker Pools")
    pool_row = page.locator("#workerpools tr", has_text="Linux builders")
    assert "1" in pool_row.inner_text() and "1 unknown" in pool_row.inner_text()
    page.screenshot(path=f"{shots}/workerpools.png", full_page=True)
