"""Two server nodes on one database and one Redis. Each has its own name, both show on Configuration ➜
Nodes, only one sends the scheduled jobs, and when one dies the other fails its tasks within 60 s,
cancels their scripts on the worker, releases their workers and takes the scheduler over."""

import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.agent.harness import Agent
from tests.e2e.conftest import ROOT, free_port
from tests.faults.harness import Node, database_rows, leases, processes_in, wait_until

PING_EVERY = 1  # seconds


def _sent_pings(node: Node) -> int:
    return len(re.findall(r"Sending due task fault-ping", node.output()))


def _nodes_page(node: Node) -> str:
    """Configuration ➜ Nodes, signed in as the administrator, as a browser would."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(node.base + "/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    opener.open(
        urllib.request.Request(
            node.base + "/accounts/login/",
            data=urllib.parse.urlencode(
                {"csrfmiddlewaretoken": token, "username": node.ADMIN, "password": node.PASSWORD}
            ).encode(),
            headers={"Referer": node.base + "/accounts/login/"},
        )
    )
    return opener.open(node.base + "/configuration/nodes/").read().decode()


@pytest.fixture
def listening_agent(cluster, tmp_path):
    agent = Agent(tmp_path / "agent").create(listening_port=free_port())
    result = agent.register(cluster.node.base, cluster.node.api_key, polling=False, name="steady")
    assert result.returncode == 0, result.stderr
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def node_b(cluster):
    node = Node(
        name="node-b",
        var_dir=cluster.root / "node-b",
        database_url=cluster.database_url,
        redis_url=cluster.redis.url,
        demo=False,
        secrets=cluster.secrets,
    )
    yield node
    node.stop()


def test_a_dead_nodes_tasks_are_failed_by_the_other_within_60s_and_scheduled_jobs_run_once(
    cluster, listening_agent, node_b
):
    a = cluster.node
    steady = wait_until(
        lambda: next((w["Id"] for w in a.api("GET", "/api/workers")["Items"] if w["Name"] == "steady"), None),
        timeout=30,
        what="the listening agent registered",
    )
    a.api("POST", "/api/tasks", {"Name": "Health", "Arguments": {"MachineIds": [steady]}})  # now, not at the next sweep
    worker = wait_until(
        lambda: next(
            (
                w["Id"]
                for w in a.api("GET", "/api/workers")["Items"]
                if w["Name"] == "steady" and w["HealthStatus"] == "Healthy"
            ),
            None,
        ),
        timeout=60,
        interval=0.5,
        what="the listening agent Healthy",
    )
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
            f"every, _ = IntervalSchedule.objects.get_or_create(every={PING_EVERY}, period='seconds')\n"
            "PeriodicTask.objects.update_or_create(name='fault-ping',"
            " defaults={'task': 'portal.ping', 'interval': every})",
        ],
        cwd=ROOT,
        env=a.env(),
        check=True,
        capture_output=True,
    )
    # Node A runs these; node B starts after they were taken.
    tasks = [a.run_script(worker, f'for i in $(seq 1 900); do echo "long {n} $i"; sleep 0.1; done') for n in range(2)]
    for n, task in enumerate(tasks):
        wait_until(lambda n=n, task=task: f"long {n} 5" in a.raw_log(task), timeout=60, what=f"task {n} running")
    node_b.start()

    # Two nodes, two names, one scheduler.
    # Node B's task runner writes its row once it is ready: seconds on a busy machine.
    def both_listed():
        page = _nodes_page(node_b)
        return page if "node-a" in page and "node-b" in page else None

    page = wait_until(both_listed, timeout=60, interval=0.5, what="both nodes on the Nodes page")
    assert "runs the scheduler" in page
    assert re.search(r'data-node="node-a">.*?<td class="text-end">5</td>\s*<td class="text-end">2</td>', page, re.S), (
        page
    )
    window_start = (_sent_pings(a), _sent_pings(node_b))
    time.sleep(8)
    sent_a, sent_b = _sent_pings(a) - window_start[0], _sent_pings(node_b) - window_start[1]
    assert (sent_a > 0) != (sent_b > 0), (sent_a, sent_b)  # exactly one beat sends
    assert sent_a + sent_b <= 8 / PING_EVERY + 2, (sent_a, sent_b)  # once each time, not once per node

    scripts = processes_in(listening_agent.home / "Work")
    assert len(scripts) >= 2, "both scripts run on the listening agent"
    a.kill()
    killed_at = time.monotonic()

    for task in tasks:
        done = node_b.wait_for_task(task, timeout=70)
        assert done["State"] == "Failed" and "The server node node-a stopped" in done["ErrorMessage"], done
    assert time.monotonic() - killed_at < 60
    wait_until(
        lambda: not processes_in(listening_agent.home / "Work"), timeout=30, what="the scripts cancelled on the worker"
    )
    assert not leases(cluster.database_url)
    assert not database_rows(
        cluster.database_url, "SELECT id FROM deployments_servertask WHERE state IN ('Executing', 'Cancelling')"
    )

    # Node B took the scheduler over.
    before = _sent_pings(node_b)
    wait_until(lambda: _sent_pings(node_b) > before + 2, timeout=40, what="node B sending the scheduled jobs")
    assert node_b.serves()
    again = node_b.run_script(worker, 'echo "on the node that stayed"')
    assert node_b.wait_for_task(again, timeout=60)["State"] == "Success"

    # Node A comes back under its own name; the cluster is whole again.
    a.start()
    cluster.aftermath()
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django_celery_beat.models import PeriodicTask; "
            "PeriodicTask.objects.filter(name='fault-ping').delete()",
        ],
        cwd=ROOT,
        env=a.env(),
        check=True,
        capture_output=True,
    )
