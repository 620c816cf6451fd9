"""Each of Reef's processes killed (SIGKILL) under load: the supervisor restarts it alone, with the others
untouched, and Reef carries on. A task whose task runner died is failed as soon as the runner is back
(by its node's name, no grace period), its script cancelled on the worker and its worker released."""

import time

from tests.faults.harness import alive, numbered_lines_once, processes_in, wait_until

LONG = 'for i in $(seq 1 600); do echo "beat $i"; sleep 0.1; done'


def _others_untouched(before: dict, after: dict, killed: str) -> bool:
    return {k: v for k, v in before.items() if k != killed} == {k: v for k, v in after.items() if k != killed}


def test_the_task_runner_killed_mid_task_is_restarted_and_its_task_failed_at_once(cluster):
    node = cluster.node
    work = node.var_dir / "demo-agent" / "Work"
    task = node.run_script(cluster.worker, LONG)
    wait_until(lambda: "beat 10" in node.raw_log(task), what="the script running")
    assert processes_in(work), "the script runs on the agent"
    before = node.children()

    old = node.kill_child("task runner")
    killed_at = time.monotonic()
    node.restarted("task runner", old)
    done = node.wait_for_task(task, timeout=30)
    failed_after = time.monotonic() - killed_at

    assert done["State"] == "Failed" and "node-a restarted (its task runner stopped)" in done["ErrorMessage"], done
    assert failed_after < 20, f"failed {failed_after:.0f}s after the kill"
    assert "node-a restarted" in node.raw_log(task)
    # The script was cancelled on the worker and its work folder removed.
    wait_until(lambda: not processes_in(work), timeout=30, what="the script cancelled on the worker")
    wait_until(lambda: not any(work.iterdir()), timeout=30, what="the work folder removed")
    assert _others_untouched(before, node.children(), "task runner")
    assert "task runner exited with code -9; restarting it in 1s." in node.output()
    cluster.aftermath()
    again = node.run_script(cluster.worker, 'echo "after the restart"')
    assert node.wait_for_task(again, timeout=60)["State"] == "Success"


def test_daphne_killed_is_restarted_and_a_running_step_is_not_disturbed(cluster):
    node = cluster.node
    task = node.run_script(cluster.worker, 'for i in $(seq 1 100); do echo "page $i"; sleep 0.05; done')
    wait_until(lambda: "page 5" in node.raw_log(task), what="the script running")
    before = node.children()
    old = node.kill_child("daphne")
    node.restarted("daphne", old)
    wait_until(node.serves, timeout=30, what="pages served again")
    done = node.wait_for_task(task, timeout=60)
    assert done["State"] == "Success"
    assert numbered_lines_once(node.raw_log(task), "page", 100) == []
    assert _others_untouched(before, node.children(), "daphne")
    cluster.aftermath()


def test_the_polling_endpoint_killed_is_restarted_and_the_agent_comes_back(cluster):
    node = cluster.node
    task = node.run_script(cluster.worker, 'for i in $(seq 1 60); do echo "poll $i"; sleep 0.05; done')
    wait_until(lambda: "poll 5" in node.raw_log(task), what="the script running")
    before = node.children()
    old = node.kill_child("polling endpoint")
    node.restarted("polling endpoint", old)
    done = node.wait_for_task(task, timeout=120)
    if done["State"] != "Success":  # a request the killed endpoint held is lost: the step fails naming its worker
        assert done["State"] == "Failed" and "local-agent" in node.raw_log(task), done
    assert _others_untouched(before, node.children(), "polling endpoint")
    cluster.aftermath()
    again = node.run_script(cluster.worker, 'echo "through the new endpoint"')
    assert node.wait_for_task(again, timeout=120)["State"] == "Success"


def test_the_demo_agent_killed_is_restarted_and_takes_work_again(cluster):
    # Killed between tasks: what a script whose agent died mid-step becomes is the transports' story.
    node = cluster.node
    before = node.children()
    old = node.kill_child("local agent")
    node.restarted("local agent", old)
    assert _others_untouched(before, node.children(), "local agent")
    assert not alive(old)
    again = node.run_script(cluster.worker, 'echo "the agent is back"')
    done = node.wait_for_task(again, timeout=120)
    assert done["State"] == "Success" and "the agent is back" in node.raw_log(again)
    cluster.aftermath()
