"""Chromium opens a task whose log is longer than the page shows: it gets the newest lines, each once and
in order, over the websocket and over the polling fallback alike, and says where the rest is."""

import pytest

from deployments.views.tasks import LOG_LINES_SHOWN
from servertasks.models import ServerTask, TaskLogLine
from servertasks.services import logstore
from tests.conftest import PASSWORD
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOTAL = LOG_LINES_SHOWN + 5_000


@pytest.mark.parametrize("transport", ["websocket", "poll"])
def test_a_long_log_shows_its_newest_lines_once_and_points_to_the_raw_download(
    live_reef, page, administrator, space, transport, tmp_path
):
    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Chatty script", state="Success")
    logstore.store_lines([TaskLogLine(task=task, sequence=n, text=f"line {n}") for n in range(TOTAL)])
    sign_in(page, live_reef, administrator.username, PASSWORD)
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/" + ("?transport=poll" if transport == "poll" else ""))
    page.wait_for_selector("#log-status:has-text('Complete')", timeout=60000)
    sequences = page.eval_on_selector_all("#task-log .log-line", "rows => rows.map(r => Number(r.dataset.sequence))")
    assert sequences == list(range(TOTAL - LOG_LINES_SHOWN, TOTAL))
    assert page.is_visible("#log-earlier >> text=Download the raw log")
    page.screenshot(path=str(tmp_path / f"long-log-{transport}.png"))
