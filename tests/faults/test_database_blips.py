"""PostgreSQL drops every connection of Reef's (pg_terminate_backend, as a database restart does) while a
step runs: connections are re-opened, the writes retried, the log lines wait in memory and are stored
once; the task ends Success, not "node stopped"."""

from tests.faults.harness import (
    database_rows,
    numbered_lines_once,
    stored_sequences_once,
    terminate_backends,
    wait_until,
)


def test_a_running_task_rides_out_postgresql_terminating_its_connections(cluster):
    node = cluster.node
    before = node.children()
    task = node.run_script(cluster.worker, 'for i in $(seq 1 300); do echo "row $i"; sleep 0.02; done')
    wait_until(lambda: "row 30" in node.raw_log(task), what="the step streaming")

    assert terminate_backends(cluster.database) > 0
    wait_until(lambda: "row 150" in node.raw_log(task), timeout=60, what="the log moving again")
    assert terminate_backends(cluster.database) > 0

    done = node.wait_for_task(task, timeout=120)
    log = node.raw_log(task)
    assert done["State"] == "Success", log[-3000:]
    assert not done["ErrorMessage"] and "stopped" not in log
    assert numbered_lines_once(log, "row", 300) == []
    ((pk,),) = database_rows(
        cluster.database_url, "SELECT id FROM deployments_servertask WHERE id = %s", int(task.split("-")[1])
    )
    assert stored_sequences_once(cluster.database_url, pk)
    assert node.children() == before, node.output()[-5000:]
    cluster.aftermath()
