"""A browser watching a task's live log while Redis restarts: the page resumes on its own and ends with
every line exactly once, in order."""

import re

from tests.e2e.conftest import sign_in
from tests.faults.harness import wait_until

TICKS = 200


def test_a_live_viewer_resumes_exactly_once_after_a_redis_restart(cluster, page):  # noqa: F811
    node = cluster.node
    sign_in(page, node.base, node.ADMIN, node.PASSWORD)
    task = node.run_script(cluster.worker, f'for i in $(seq 1 {TICKS}); do echo "live $i"; sleep 0.04; done')
    page.goto(f"{node.base}/Spaces-1/tasks/{task.split('-')[1]}/")
    page.wait_for_selector("#task-log .log-line:has-text('live 20')", timeout=30000)
    assert page.inner_text("#log-status") == "Live"

    cluster.redis.restart(down_for=1.0)

    page.wait_for_selector("#log-status:has-text('Complete')", timeout=120000)
    texts = page.eval_on_selector_all("#task-log .log-line", "rows => rows.map(r => r.lastChild.textContent)")
    sequences = page.eval_on_selector_all("#task-log .log-line", "rows => rows.map(r => Number(r.dataset.sequence))")
    assert [t for t in texts if re.fullmatch(r"live \d+", t)] == [f"live {i}" for i in range(1, TICKS + 1)]
    assert sorted(sequences) == list(range(len(sequences)))
    assert wait_until(lambda: node.task(task)["State"] == "Success", timeout=30)
    cluster.aftermath()
