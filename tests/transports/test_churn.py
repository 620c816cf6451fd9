"""Steady under churn: agents and sshd restarted, a network cut mid-step, a wrong pinned identity.
Each networked transport alike (the built-in worker has no connection to lose)."""

from __future__ import annotations

import copy
import time

import pytest

from infrastructure.transports import TrustError, WorkerUnreachable
from tests.transports.scripts import command, execute

pytestmark = pytest.mark.django_db


def test_after_the_agent_restarts_the_next_ten_scripts_all_succeed(networked):
    """For SSH the sshd is restarted (and every connection it served is killed)."""
    assert execute(networked.service(), "echo before").texts == ["before"]
    networked.restart()
    for n in range(10):
        outcome = execute(networked.service(), f"echo after {n}")
        assert (outcome.exit_code, outcome.texts) == (0, [f"after {n}"])
        assert not (networked.work_root / outcome.ticket).exists()


def test_a_three_second_cut_during_a_step_loses_no_line_and_doubles_none(networked):
    service = networked.service()
    ticket = service.start_script(command('for i in $(seq 1 50); do echo "line $i"; sleep 0.1; done'))
    lines: list = []
    after, cut_at = -1, None
    deadline = time.monotonic() + 90
    while True:
        status = service.get_status(ticket, after, 1)
        for line in status["Logs"]:
            lines.append(line)
            after = max(after, line["Sequence"])
        if cut_at is None and len(lines) >= 5:
            networked.proxy.cut(3)
            cut_at = time.monotonic()
        if status["State"] == "Complete" and not status.get("HasMore"):
            break
        assert time.monotonic() < deadline
    service.complete_script(ticket)
    assert cut_at is not None
    assert [line["Text"] for line in lines] == [f"line {i}" for i in range(1, 51)]
    assert status["ExitCode"] == 0
    assert not (networked.work_root / ticket).exists(), "the script's work folder was left on the worker"


@pytest.mark.parametrize("name", ["listening", "ssh"])  # a polling worker is never connected to
def test_connect_failures_are_retried_as_the_policy_says_then_unreachable(world, name):
    """The proxy refuses every connection: one log line per retry, then WorkerUnreachable."""
    networked = world[name]
    networked.retries.clear()
    worker = copy.copy(networked.worker)
    worker.machine_policy = copy.copy(worker.machine_policy)
    worker.machine_policy.retry_count, worker.machine_policy.retry_wait = 2, 1
    networked.proxy.cut(30)
    try:
        service = type(networked.service())(worker, on_retry=networked.retries.append)
        if hasattr(service, "_key"):  # SSH: a fresh connection, not the cached one
            worker.port = networked.proxy.port
        started = time.monotonic()
        with pytest.raises(WorkerUnreachable, match="tried 3 times"):
            service.health()
        assert 2 <= time.monotonic() - started < 15
        assert len(networked.retries) == 2
        assert all("attempt" in line and "retrying in 1s" in line for line in networked.retries)
    finally:
        networked.proxy.cut(0)


@pytest.mark.parametrize("name", ["listening", "ssh"])
def test_a_wrong_pinned_identity_is_refused_at_once_naming_both(world, name):
    kind = world[name]
    kind.retries.clear()
    worker = copy.copy(kind.worker)
    if name == "listening":
        worker.thumbprint, seen = "0" * 40, kind.worker.thumbprint
    else:
        worker.fingerprint, seen = "SHA256:" + "A" * 43, kind.worker.fingerprint
    service = type(kind.service())(worker, on_retry=kind.retries.append)
    started = time.monotonic()
    with pytest.raises(TrustError) as refused:
        service.health()
    assert time.monotonic() - started < 3, "a trust failure is never retried"
    assert kind.retries == []
    message = str(refused.value)
    assert seen in message and (worker.thumbprint if name == "listening" else worker.fingerprint) in message
