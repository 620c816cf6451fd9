"""Chromium opens a running deployment, sees its lines arrive live, reloads midway, and ends with every
line exactly once, in order; the same without websockets (polling the details API)."""

import re

import pytest

from deployments.services import deploy
from tests.conftest import PASSWORD
from tests.deployments.conftest import add_step, production, project  # noqa: F401 - fixtures
from tests.e2e.conftest import sign_in
from tests.e2e.test_task_cap import task_runner  # noqa: F401 - fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TICKS = 60


def start_deployment(administrator, project, production):  # noqa: F811
    add_step(
        project,
        "Tick",
        f'for i in $(seq 1 {TICKS}); do echo "tick $i"; sleep 0.05; done; '
        'echo "##octopus[stdout-warning]"; echo careful',
    )
    release = deploy.create_release(actor=administrator, project=project)
    return deploy.deploy_release(actor=administrator, release=release, environment=production).task


def read_log(page) -> tuple[list[str], list[int]]:
    texts = page.eval_on_selector_all("#task-log .log-line", "rows => rows.map(r => r.lastChild.textContent)")
    sequences = page.eval_on_selector_all("#task-log .log-line", "rows => rows.map(r => Number(r.dataset.sequence))")
    return texts, sequences


def assert_complete_once_in_order(page):
    texts, sequences = read_log(page)
    ticks = [t for t in texts if re.fullmatch(r"tick \d+", t)]
    assert ticks == [f"tick {i}" for i in range(1, TICKS + 1)]
    assert sorted(sequences) == list(range(len(sequences)))  # every line once (the tree groups them by node)


def test_lines_appear_live_and_a_reload_midway_loses_and_doubles_nothing(
    live_reef,
    page,
    task_runner,
    administrator,
    space,  # noqa: F811
    project,
    production,
    tmp_path,
):  # noqa: F811
    sign_in(page, live_reef, administrator.username, PASSWORD)
    task = start_deployment(administrator, project, production)
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/")
    page.wait_for_selector("#task-log .log-line:has-text('tick 5')", timeout=30000)
    assert page.inner_text("#log-status") == "Live"
    assert not page.query_selector(f"#task-log .log-line:has-text('tick {TICKS}')")  # still running: lines arrive live
    page.reload()
    page.wait_for_selector("#log-status:has-text('Complete')", timeout=60000)
    assert_complete_once_in_order(page)
    assert page.eval_on_selector("#task-log .log-Warning", "e => e.lastChild.textContent") == "careful"
    assert "Success" in page.inner_text("#task-log summary")
    page.screenshot(path=str(tmp_path / "live-log.png"), full_page=True)


def test_without_websockets_the_page_polls_the_api_and_still_gets_every_line_once(
    live_reef,
    page,
    task_runner,
    administrator,  # noqa: F811
    space,
    project,
    production,
):  # noqa: F811
    sign_in(page, live_reef, administrator.username, PASSWORD)
    task = start_deployment(administrator, project, production)
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/?transport=poll")
    page.wait_for_selector("#log-status:has-text('Complete')", timeout=60000)
    assert_complete_once_in_order(page)


def test_search_filters_the_log_and_scrolling_up_stops_following(
    live_reef,
    page,
    task_runner,
    administrator,
    space,  # noqa: F811
    project,
    production,
):  # noqa: F811
    sign_in(page, live_reef, administrator.username, PASSWORD)
    task = start_deployment(administrator, project, production)
    page.goto(f"{live_reef}/{space.octopus_id}/tasks/{task.pk}/")
    page.wait_for_selector("#log-status:has-text('Complete')", timeout=60000)
    page.fill("#log-search", "tick 1")
    visible = page.eval_on_selector_all(
        "#task-log .log-line:not([hidden])", "rows => rows.map(r => r.lastChild.textContent)"
    )
    assert visible == ["tick 1"] + [f"tick {i}" for i in range(10, 20)]
    page.fill("#log-search", "")
    page.set_viewport_size({"width": 1200, "height": 400})
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.mouse.wheel(0, -300)
    page.wait_for_function("!document.getElementById('log-follow').checked")
