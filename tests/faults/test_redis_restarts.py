"""Redis restarted for a second under a running Reef: mid-stream and mid-dispatch. Every process rides it
out (none exits: no Celery worker, task runner, beat, daphne, polling endpoint or agent is restarted),
the running step continues, every stored line is there once, and tasks queued meanwhile each run once."""

import threading

from tests.faults.harness import database_rows, numbered_lines_once, wait_until


def test_a_step_streaming_its_log_rides_out_a_redis_restart(cluster):
    node = cluster.node
    before = node.children()
    task = node.run_script(cluster.worker, 'for i in $(seq 1 300); do echo "tick $i"; sleep 0.02; done')
    wait_until(lambda: "tick 40" in node.raw_log(task), what="the step streaming")

    cluster.redis.restart(down_for=1.0)

    done = node.wait_for_task(task, timeout=120)
    log = node.raw_log(task)
    assert done["State"] == "Success", log[-3000:]
    assert numbered_lines_once(log, "tick", 300) == []
    assert node.children() == before, node.output()[-5000:]  # nobody exited, nobody was restarted
    assert "Error on restarting" not in node.output()  # the health queue's consumer closed quietly with the connection
    cluster.aftermath()


def test_tasks_queued_while_redis_restarts_each_run_once(cluster):
    node = cluster.node
    before = node.children()
    queued, errors = [], []

    def queue(n):
        try:
            queued.append((n, node.run_script(cluster.worker, f'echo "dispatched {n}"; sleep 1; echo "done {n}"')))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    def stored(*numbers):
        rows = database_rows(
            cluster.database_url, "SELECT arguments::text FROM deployments_servertask WHERE name = 'AdHocScript'"
        )
        return all(any(f"dispatched {n}" in row[0] for row in rows) for n in numbers)

    threads = [threading.Thread(target=queue, args=(n,)) for n in range(4)]
    for thread in threads[:2]:
        thread.start()
    # Redis dies as the first two tasks' messages are sent, so a message can be lost with it (this Redis keeps
    # nothing on disk): the node sends a task still Queued after REEF_LOST_TASK_SECONDS (10 here) again.
    wait_until(lambda: stored(0, 1), timeout=30, what="the first two tasks stored")
    cluster.redis.stop()  # mid-dispatch: two tasks on their way to a worker, two more queued while Redis is down
    for thread in threads[2:]:
        thread.start()
    wait_until(lambda: stored(2, 3), timeout=30, what="two tasks stored while Redis is down")
    cluster.redis.start()
    for thread in threads:
        thread.join(60)

    assert not errors and len(queued) == 4, errors
    for n, task in queued:
        done = node.wait_for_task(task, timeout=120)
        log = node.raw_log(task)
        assert done["State"] == "Success", log[-3000:]
        assert log.count(f"dispatched {n}") == 1 and log.count(f"done {n}") == 1, log
    assert node.children() == before, node.output()[-5000:]
    cluster.aftermath()
