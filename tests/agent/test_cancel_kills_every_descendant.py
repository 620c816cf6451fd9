"""Cancel leaves nothing running: children that left the script's process group with `setsid`,
`nohup` or a double fork are found by the marker in their environment and killed."""

import os

import pytest

from tentacle_agent.packages import PackageCache
from tentacle_agent.runner import MARKER, ScriptRunner
from tests.agent.stdio_agent import StdioAgent, live_processes_marked, wait_until

ESCAPING = """
setsid sleep 1000 &
nohup setsid bash -c 'sleep 1000' > /dev/null 2>&1 &
( ( trap '' TERM; exec sleep 1000 ) & ) > /dev/null
echo started
sleep 1000
"""


def zombie_children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(name))
    return found


def test_cancel_kills_setsid_and_nohup_daemons_of_a_real_agent(tmp_path):
    agent = StdioAgent(tmp_path / "agent")
    try:
        ticket = agent.call("StartScript", ScriptBody=ESCAPING, Syntax="Bash")["Ticket"]
        wait_until(lambda: len(live_processes_marked(ticket)) >= 5)
        agent.call("CancelScript", Ticket=ticket)
        status = wait_until(
            lambda: (s := agent.call("GetStatus", Ticket=ticket, WaitSeconds=5))["State"] == "Complete" and s
        )
        assert status["FailureMessage"] == "The script was cancelled."
        assert live_processes_marked(ticket) == []
        wait_until(
            lambda: zombie_children(agent.process.pid) == [], timeout=15
        )  # the agent reaped the orphans it adopted
        agent.call("CompleteScript", Ticket=ticket)
        assert not (tmp_path / "agent" / "Work" / ticket).exists()
    finally:
        agent.stop()


def test_a_timed_out_script_leaves_no_daemon_behind(tmp_path):
    runner = ScriptRunner(tmp_path / "Work", PackageCache(tmp_path / "Packages"))
    ticket = runner.start({"ScriptBody": ESCAPING, "Syntax": "Bash", "TimeoutSeconds": 1})
    status = wait_until(lambda: (s := runner.status(ticket, -1, 5))["State"] == "Complete" and s)
    assert "Timed out after 1 seconds" in status["FailureMessage"]
    assert live_processes_marked(ticket) == []


def test_every_script_carries_its_ticket_in_its_environment(tmp_path):
    runner = ScriptRunner(tmp_path / "Work")
    ticket = runner.start({"ScriptBody": f'echo "${MARKER}"', "Syntax": "Bash"})
    status = wait_until(lambda: (s := runner.status(ticket, -1, 5))["State"] == "Complete" and s)
    assert [line["Text"] for line in status["Logs"]] == [ticket]


@pytest.mark.parametrize("ignore_term", [False, True])
def test_the_agent_stopping_kills_its_scripts_and_their_daemons(tmp_path, ignore_term):
    agent = StdioAgent(tmp_path / "agent")
    body = ("trap '' TERM\n" if ignore_term else "") + ESCAPING
    ticket = agent.call("StartScript", ScriptBody=body, Syntax="Bash")["Ticket"]
    wait_until(lambda: len(live_processes_marked(ticket)) >= 5)
    agent.stop()
    assert agent.process.returncode == 0
    assert live_processes_marked(ticket) == []
    assert not (tmp_path / "agent" / "Work" / ticket).exists()


def test_a_repeated_cancel_or_a_complete_after_cancel_says_it_once(tmp_path):
    runner = ScriptRunner(tmp_path / "Work")
    ticket = runner.start({"ScriptBody": "echo started; sleep 100", "Syntax": "Bash"})
    wait_until(lambda: runner.status(ticket, -1, 5)["Logs"])
    runner.cancel(ticket)
    runner.cancel(ticket)
    status = wait_until(lambda: (s := runner.status(ticket, -1, 5))["State"] == "Complete" and s)
    assert [line["Text"] for line in status["Logs"]] == ["started", "The script was cancelled."]
    runner.complete(ticket)
    assert list((tmp_path / "Work").iterdir()) == []
