"""`make run` stopped with Ctrl-C in the middle of a deployment, then started again: every child stops,
the supervisor exits 0, and the starting node fails the task it was running at once (no grace period),
cancelling its script on the worker; nothing is left Executing and no lease is left."""

import time

from tests.faults.harness import alive, processes_in, wait_until


def test_ctrl_c_mid_task_then_start_again_leaves_nothing_executing(cluster):
    node = cluster.node
    work = node.var_dir / "demo-agent" / "Work"
    task = node.run_script(cluster.worker, 'for i in $(seq 1 600); do echo "step $i"; sleep 0.1; done')
    wait_until(lambda: "step 10" in node.raw_log(task), what="the script running")
    children = list(node.children().values())

    assert node.interrupt() == 0, node.output()[-3000:]
    assert "Reef stopped." in node.output()
    wait_until(lambda: not [pid for pid in children if alive(pid)], timeout=10, what="every child stopped")

    node.start()
    started_at = time.monotonic()
    done = node.wait_for_task(task, timeout=30)
    assert time.monotonic() - started_at < 15
    assert done["State"] == "Failed" and "node-a restarted" in done["ErrorMessage"], done
    wait_until(lambda: not processes_in(work), timeout=60, what="no script left on the worker")
    cluster.aftermath()
    node.wait_for_healthy(cluster.worker)
    again = node.run_script(cluster.worker, 'echo "running again"')
    assert node.wait_for_task(again, timeout=120)["State"] == "Success"
