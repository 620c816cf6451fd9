"""A script's work folder, and the secrets in it, do not outlive the script: secrets files go as soon
as they are not needed, the folder at CompleteScript however the script ended, after a while when
nobody collects it, and at the next start when the agent that owned it died."""

import json

import pytest

from tentacle_agent.packages import PackageCache
from tentacle_agent.runner import ScriptRunner
from tests.agent.stdio_agent import StdioAgent, wait_until

SECRET = [{"Name": "Pw", "Value": "s3cr3t-value", "IsSensitive": True}]


@pytest.fixture
def runner(tmp_path):
    return ScriptRunner(tmp_path / "Work", PackageCache(tmp_path / "Packages"))


def finished(runner, ticket):
    status = runner.status(ticket, -1, 5)
    return status if status["State"] == "Complete" else None


def files_holding_the_secret(folder):
    return [p.name for p in folder.rglob("*") if p.is_file() and b"s3cr3t-value" in p.read_bytes()]


def test_a_running_bash_script_has_no_secrets_on_disk(runner):
    ticket = runner.start({"ScriptBody": "echo ready; sleep 30", "Syntax": "Bash", "Variables": SECRET})
    wait_until(lambda: runner.status(ticket, -1, 5)["Logs"])
    work = runner.work_root / ticket
    assert sorted(p.name for p in work.iterdir()) == ["script.sh"]
    assert files_holding_the_secret(work) == []
    runner.cancel(ticket)


def test_python_keeps_its_variables_while_it_runs_and_not_after(runner):
    body = "from octopus import *\nimport time\nprint(len(get_octopusvariable('Pw')), flush=True)\ntime.sleep(1)"
    ticket = runner.start({"ScriptBody": body, "Syntax": "Python", "Variables": SECRET})
    wait_until(lambda: runner.status(ticket, -1, 5)["Logs"])
    work = runner.work_root / ticket
    assert json.loads((work / "variables.json").read_text())[0]["Value"] == "s3cr3t-value"
    status = wait_until(lambda: finished(runner, ticket))
    assert [line["Text"] for line in status["Logs"]] == ["12"]
    assert work.exists() and files_holding_the_secret(work) == []


@pytest.mark.parametrize(
    "body,timeout", [("exit 3", None), ("fail_step 'no'", None), ("sleep 30", 1), ("echo hi", None)]
)
def test_complete_script_removes_the_work_folder_however_the_script_ended(runner, body, timeout):
    ticket = runner.start({"ScriptBody": body, "Syntax": "Bash", "Variables": SECRET, "TimeoutSeconds": timeout})
    wait_until(lambda: finished(runner, ticket))
    runner.complete(ticket)
    assert list(runner.work_root.iterdir()) == []


def test_complete_script_on_a_running_script_stops_it_and_removes_its_folder(runner):
    ticket = runner.start({"ScriptBody": "echo x > file; sleep 30", "Syntax": "Bash"})
    wait_until(lambda: (runner.work_root / ticket / "file").exists())
    runner.complete(ticket)
    assert list(runner.work_root.iterdir()) == []


def test_a_finished_script_nobody_collects_is_cleaned_up_and_its_ticket_forgotten(tmp_path):
    runner = ScriptRunner(tmp_path / "Work", forget_after=0.5)
    ticket = runner.start({"ScriptBody": "echo done", "Syntax": "Bash", "Variables": SECRET})
    running = runner.start({"ScriptBody": "sleep 5", "Syntax": "Bash"})
    wait_until(lambda: finished(runner, ticket))
    wait_until(lambda: not (tmp_path / "Work" / ticket).exists(), timeout=10)
    with pytest.raises(Exception, match="was not collected within 0.5 seconds"):
        runner.status(ticket)
    assert (tmp_path / "Work" / running).exists(), "a running script is never swept"
    runner.cancel(running)


def test_folders_left_by_an_agent_that_died_are_removed_when_the_next_one_starts(tmp_path):
    home = tmp_path / "agent"
    dead = StdioAgent(home)
    ticket = dead.call("StartScript", ScriptBody="sleep 1", Syntax="Bash", Variables=SECRET)["Ticket"]
    wait_until(lambda: (home / "Work" / ticket / "script.sh").exists())
    dead.kill()
    alive = StdioAgent(home)  # another agent on the same home, still running its script
    other = alive.call("StartScript", ScriptBody="sleep 30", Syntax="Bash")["Ticket"]
    wait_until(lambda: (home / "Work" / other).exists())
    try:
        restarted = ScriptRunner(home / "Work")
        assert not (home / "Work" / ticket).exists() and not (home / "Work" / f"{ticket}.lock").exists()
        assert (home / "Work" / other).exists(), "a folder whose agent is alive stays"
        assert restarted.scripts == {}
    finally:
        alive.stop()
    assert list((home / "Work").iterdir()) == []
