"""StartScript is idempotent by the ticket the server chose: a retry after a lost answer never runs the
script twice, not even when the retries arrive at once."""

import threading

import pytest

from tentacle_agent.packages import PackageCache
from tentacle_agent.runner import ScriptRunner
from tentacle_agent.service import ScriptService
from tests.agent.stdio_agent import wait_until

TICKET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def service(tmp_path):
    return ScriptService(tmp_path / "agent")


def start(service, body, ticket=TICKET):
    return service.handle(
        {"Id": "1", "Method": "StartScript", "Params": {"ScriptBody": body, "Syntax": "Bash", "Ticket": ticket}}
    )


def finished(service, ticket):
    status = service.runner.status(ticket, -1, 10)
    return status if status["State"] == "Complete" else None


def test_a_repeated_start_returns_the_same_ticket_and_runs_the_script_once(service, tmp_path):
    runs = tmp_path / "runs"
    body = f"echo ran >> {runs}; sleep 0.5"
    assert start(service, body)["Result"] == {"Ticket": TICKET}
    assert start(service, body)["Result"] == {"Ticket": TICKET}, "a retry while it runs"
    wait_until(lambda: finished(service, TICKET))
    assert start(service, body)["Result"] == {"Ticket": TICKET}, "a retry after it finished, before CompleteScript"
    assert runs.read_text() == "ran\n"
    assert [line["Text"] for line in finished(service, TICKET)["Logs"]] == []


def test_concurrent_duplicates_start_one_script(service, tmp_path):
    runs = tmp_path / "runs"
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(start(service, f"echo ran >> {runs}"))) for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer["Result"]["Ticket"] for answer in answers] == [TICKET] * 20
    wait_until(lambda: finished(service, TICKET))
    assert runs.read_text() == "ran\n"


def test_without_a_ticket_each_start_is_a_new_script(tmp_path):
    runner = ScriptRunner(tmp_path / "Work", PackageCache(tmp_path / "Packages"))
    first = runner.start({"ScriptBody": "true", "Syntax": "Bash"})
    second = runner.start({"ScriptBody": "true", "Syntax": "Bash"})
    assert first != second and len(first) == 32


@pytest.mark.parametrize(
    "ticket", ["../../etc", "ABCDEF0123456789", "0123456789abcde", "f" * 65, 12345678901234567, ""]
)
def test_a_malformed_ticket_is_refused_and_starts_nothing(service, ticket):
    answer = start(service, "echo never", ticket)
    assert answer["Error"] == {
        "Kind": "BadRequest",
        "Message": "Ticket must be 16 to 64 lowercase hexadecimal characters.",
    }
    assert service.runner.scripts == {}
    assert [p.name for p in service.runner.work_root.iterdir()] == []


def test_a_ticket_already_completed_is_not_run_again(service, tmp_path):
    runs = tmp_path / "runs"
    start(service, f"echo ran >> {runs}")
    wait_until(lambda: finished(service, TICKET))
    service.handle({"Id": "2", "Method": "CompleteScript", "Params": {"Ticket": TICKET}})
    again = start(service, f"echo ran >> {runs}")
    assert (
        again["Error"]["Kind"] == "BadRequest"
        and "already ran on this agent and was completed" in again["Error"]["Message"]
    )
    assert runs.read_text() == "ran\n"
