"""An administrator signs in with a real browser, creates a team and sees it listed."""

import os

import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_an_administrator_creates_a_team_and_sees_it_listed(live_reef, page, administrator, space, tmp_path):
    sign_in(page, live_reef, "administrator", PASSWORD)
    assert page.url.endswith(f"/{space.octopus_id}/")
    assert page.locator("#space-switcher").inner_text().strip() == "Default"

    page.click("text=Configuration")
    page.click("text=Teams")
    page.fill("#id_name", "Platform engineers")
    page.fill("#id_description", "They look after the worker pools.")
    page.select_option("#id_space", label="Default")
    page.click("#add-team button[type=submit]")

    assert page.locator("h1").inner_text().startswith("Platform engineers")
    page.click("text=Teams")
    row = page.locator("#teams tr", has_text="Platform engineers")
    assert row.count() == 1 and "Default" in row.inner_text()
    page.screenshot(path=os.environ.get("REEF_SCREENSHOT_DIR", str(tmp_path)) + "/teams.png", full_page=True)


def test_a_wrong_password_keeps_the_visitor_out(live_reef, page, administrator):
    sign_in(page, live_reef, "administrator", "not the password")
    assert "/accounts/login/" in page.url
    assert page.locator(".alert-danger").inner_text().startswith("Your username and password did not match")
