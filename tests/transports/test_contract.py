"""One contract, four transports: each scenario runs alike on the built-in worker, a listening agent,
a polling agent and an SSH worker, through the typed script service only."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.agent.harness import wait_until
from tests.transports.conftest import in_threads
from tests.transports.scripts import command, execute, follow

# Rows of the module's workers are committed once (conftest.world); each test's own writes roll back.
pytestmark = pytest.mark.django_db


@pytest.fixture
def shared_path():
    """A folder every worker's scripts may write to: the built-in worker may run them as another account."""
    folder = Path(tempfile.mkdtemp(prefix="reef-contract-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def assert_no_work_folder(kind, ticket: str) -> None:
    if kind.work_root is not None:
        assert not (kind.work_root / ticket).exists(), f"the work folder of {ticket} was left on {kind.name}"


def test_lines_keep_their_order_across_stdout_and_stderr(kind):
    """Two pipes have no common order for bytes written at the same instant; written a moment apart,
    as a user's script does, they are numbered in the order they were written, on every transport."""
    outcome = execute(
        kind.service(), 'for i in $(seq 1 40); do echo "out $i"; sleep 0.02; echo "err $i" >&2; sleep 0.02; done'
    )
    assert outcome.texts == [text for i in range(1, 41) for text in (f"out {i}", f"err {i}")]
    assert [line["Sequence"] for line in outcome.lines] == list(range(80))
    assert outcome.stream("stderr") == [f"err {i}" for i in range(1, 41)]
    assert {line["Category"] for line in outcome.lines if line["Stream"] == "stderr"} == {"Error"}


def test_exit_codes_and_failed_steps_come_back_as_the_script_left(kind):
    service = kind.service()
    assert execute(service, "echo fine").exit_code == 0
    failed = execute(service, "echo about to fail; exit 3")
    assert (failed.exit_code, failed.texts) == (3, ["about to fail"])
    assert "code 3" in failed.status["FailureMessage"]
    stepped = execute(service, 'fail_step "the disk is full"; echo never')
    assert stepped.exit_code == 1 and stepped.status["FailureMessage"] == "the disk is full"
    assert "never" not in stepped.texts
    assert_no_work_folder(kind, stepped.ticket)


def test_variables_reach_the_script_and_output_variables_come_back_masked_where_sensitive(kind):
    variables = [
        {"Name": "Greeting", "Value": "hello", "IsSensitive": False},
        {"Name": "Password", "Value": "p4ss-W0rd", "IsSensitive": True},
    ]
    outcome = execute(
        kind.service(),
        'echo "greeting $(get_octopusvariable Greeting)"; echo "pw $(get_octopusvariable Password)"; '
        'set_octopusvariable Colour blue; set_octopusvariable Token "tok-9876" --sensitive; '
        'echo "token tok-9876"',
        variables=variables,
    )
    assert outcome.texts == ["greeting hello", "pw ********", "token ********"]
    assert outcome.status["OutputVariables"] == [
        {"Name": "Colour", "Value": "blue", "IsSensitive": False},
        {"Name": "Token", "Value": "tok-9876", "IsSensitive": True},
    ]


def test_artifacts_are_collected_and_the_work_folder_removed(kind):
    outcome = execute(kind.service(), 'printf "report body" > report.txt; new_octopusartifact report.txt; echo done')
    assert outcome.texts == ["done"]
    assert outcome.artifacts == [
        {"Name": "report.txt", "Length": 11, "ContentBase64": base64.b64encode(b"report body").decode()}
    ]
    assert_no_work_folder(kind, outcome.ticket)


def test_a_package_is_uploaded_once_then_taken_from_the_cache(kind):
    data = b"not an archive\n" + os.urandom(4096)
    sha256 = hashlib.sha256(data).hexdigest()
    service = kind.service()
    assert not service.has_package(sha256)
    service.upload_package(sha256, "tool.bin", data)
    package = [{"PackageId": "tool", "Version": "1.0.0", "Sha256": sha256}]
    first = execute(service, "sha256sum tool/tool.bin | cut -c1-64", packages=package)
    assert first.texts == [sha256]
    # The next step, on a new transport as the orchestrator makes one: the worker already has it.
    later = kind.service()
    assert later.has_package(sha256)
    assert execute(later, "sha256sum tool/tool.bin | cut -c1-64", packages=package).texts == [sha256]


def test_a_package_whose_bytes_do_not_match_its_hash_is_refused(kind):
    from infrastructure.transports import TransportError

    with pytest.raises(TransportError, match="SHA-256"):
        kind.service().upload_package("0" * 64, "evil.bin", b"something else")


def test_cancel_kills_the_whole_process_tree_and_ends_cancelled(kind, shared_path):
    tmp_path = shared_path
    body = (
        f"sleep 300 & echo $! > {tmp_path}/child\n"
        f"( sleep 300 & echo $! > {tmp_path}/grandchild; wait ) &\n"
        f"setsid sleep 60 & echo $! > {tmp_path}/detached\n"
        "echo started\nwait\n"
    )
    service = kind.service()
    ticket = service.start_script(command(body))
    wait_until(lambda: all((tmp_path / name).exists() for name in ("child", "grandchild", "detached")), timeout=30)
    status = service.get_status(ticket, -1, 10)
    assert [line["Text"] for line in status["Logs"]][:1] == ["started"]
    started = time.monotonic()
    service.cancel_script(ticket)
    lines, status = follow(service, ticket, deadline=30)
    assert time.monotonic() - started < 15
    assert status["State"] == "Complete" and "cancel" in (status.get("FailureMessage") or "").lower()
    pids = {name: int((tmp_path / name).read_text()) for name in ("child", "grandchild", "detached")}
    try:
        wait_until(lambda: not any(alive(pid) for pid in pids.values()), timeout=10)
    except TimeoutError:
        pytest.fail(f"still running after the cancel: {[name for name, pid in pids.items() if alive(pid)]}")
    service.complete_script(ticket)
    assert_no_work_folder(kind, ticket)


def test_a_script_past_its_timeout_is_stopped(kind):
    started = time.monotonic()
    outcome = execute(kind.service(), "echo before; sleep 60; echo after", timeout=2)
    assert time.monotonic() - started < 20
    assert "before" in outcome.texts and "after" not in outcome.texts
    assert outcome.exit_code != 0 and "Timed out" in outcome.status["FailureMessage"]


def test_twenty_scripts_run_at_once_on_one_worker(kind):
    service = kind.service()
    started = time.monotonic()
    results = in_threads(lambda n: execute(service, f"sleep 2; echo done {n}"), 20)
    failures = {n: r for n, r in results.items() if isinstance(r, BaseException)}
    assert not failures, failures
    assert sorted(results) == list(range(20))
    assert all(outcome.exit_code == 0 and outcome.texts == [f"done {n}"] for n, outcome in results.items())
    assert time.monotonic() - started < 15, "twenty 2-second scripts ran side by side"


def test_a_hundred_thousand_lines_arrive_all_once_and_in_order(kind):
    outcome = execute(kind.service(), "seq 1 100000", deadline=180)
    assert len(outcome.lines) == 100_000
    assert outcome.texts == [str(n) for n in range(1, 100_001)]
    assert [line["Sequence"] for line in outcome.lines] == list(range(100_000))


def test_utf8_invalid_bytes_and_nul_survive_as_text(kind):
    outcome = execute(
        kind.service(),
        "printf 'h\\xc3\\xa9llo \\xe2\\x9c\\x93 \\xf0\\x9f\\x90\\x99\\n'; "
        "printf 'bad \\xff\\xfe bytes\\n'; printf 'nul \\000 inside\\n'; printf 'no newline'",
    )
    texts = outcome.texts
    assert texts[0] == "héllo ✓ 🐙"
    assert texts[1] == "bad \ufffd\ufffd bytes"
    assert texts[2] in ("nul \x00 inside", "nul \ufffd inside")
    assert texts[3:] == ["no newline"]


def test_a_start_sent_twice_with_one_ticket_runs_the_script_once(kind, shared_path):
    runs = shared_path / "runs"
    script = command(f"echo run >> {runs}; echo ran")
    service = kind.service()
    assert service.start_script(script) == script["Ticket"]
    assert service.start_script(script) == script["Ticket"]
    lines, status = follow(service, script["Ticket"])
    assert [line["Text"] for line in lines] == ["ran"] and status["ExitCode"] == 0
    service.complete_script(script["Ticket"])
    assert runs.read_text() == "run\n"


def test_a_lost_start_script_answer_runs_the_script_once(networked, shared_path):
    """The proxy lets the request through, holds the worker's answer, then cuts the connection: the
    server retries with the same ticket and the script runs once."""
    runs = shared_path / "runs"
    script = command(f"echo run >> {runs}; sleep 1; echo ran")
    service = networked.service()
    execute(service, "true")  # a warm connection (and SSH's relay channel), as in the middle of a deployment
    answers = "to_server" if networked.name == "polling" else "to_client"  # a polling agent posts its answers
    networked.proxy.stall(answers)
    outcome: dict = {}
    caller = threading.Thread(target=lambda: outcome.update(ticket=service.start_script(script)), daemon=True)
    caller.start()
    try:
        wait_until(runs.exists, timeout=30)
    finally:
        networked.proxy.cut()
    caller.join(60)
    assert outcome.get("ticket") == script["Ticket"]
    lines, status = follow(service, script["Ticket"])
    assert [line["Text"] for line in lines] == ["ran"] and status["ExitCode"] == 0
    service.complete_script(script["Ticket"])
    assert runs.read_text() == "run\n"
