"""What a script prints, as the agent hands it over: one sequence across stdout and stderr in the order
the runner read them, long lines cut at a bounded cost, multi-line secrets masked line by line."""

import pytest

from tentacle_agent.runner import MASK, MAX_LINE, TRUNCATED
from tests.agent.stdio_agent import StdioAgent


@pytest.fixture
def agent(tmp_path):
    agent = StdioAgent(tmp_path / "agent")
    yield agent
    agent.stop()


def test_stdout_and_stderr_share_one_increasing_sequence_and_keep_their_own_order(agent):
    body = "for n in $(seq 1 300); do echo out $n; echo err $n >&2; done"
    _, lines, status = agent.run(body)
    assert status["ExitCode"] == 0
    assert [line["Sequence"] for line in lines] == list(range(600)), "one sequence, no gaps, strictly increasing"
    assert [line["Text"] for line in lines if line["Stream"] == "stdout"] == [f"out {n}" for n in range(1, 301)]
    assert [line["Text"] for line in lines if line["Stream"] == "stderr"] == [f"err {n}" for n in range(1, 301)]


def test_a_stderr_line_is_never_numbered_before_an_earlier_stdout_line(agent):
    # Each stdout line is written and flushed before the stderr line after it: read first, numbered first.
    body = (
        "import sys, time\nfor n in range(50):\n    print(f'out {n}', flush=True)\n    time.sleep(0.01)\n"
        "    print(f'err {n}', file=sys.stderr, flush=True)\n    time.sleep(0.01)\n"
    )
    _, lines, _ = agent.run(body, "Python")
    assert [line["Text"] for line in lines] == [text for n in range(50) for text in (f"out {n}", f"err {n}")]


def test_a_200_mb_line_without_a_newline_costs_the_agent_a_few_megabytes(agent):
    _, lines, _ = agent.run("echo before")
    baseline = agent.peak_rss_kib()
    _, lines, status = agent.run("head -c 200000000 /dev/zero | tr '\\0' a; echo; echo after")
    assert status["ExitCode"] == 0
    assert [line["Text"][-len(TRUNCATED) :] if len(line["Text"]) > 100 else line["Text"] for line in lines] == [
        TRUNCATED,
        "after",
    ]
    assert lines[0]["Text"] == "a" * MAX_LINE + TRUNCATED
    grown_mib = (agent.peak_rss_kib() - baseline) / 1024
    assert grown_mib < 16, f"the agent's peak memory grew by {grown_mib:.0f} MiB for one long line"


def test_a_long_line_with_a_newline_later_is_cut_and_the_next_line_kept(agent):
    _, lines, _ = agent.run("printf 'x%.0s' $(seq 1 70000); echo tail-of-long; echo next")
    assert [line["Text"] for line in lines] == ["x" * MAX_LINE + TRUNCATED, "next"]


SECRET = "first-line-of-key\nsecond-line-of-key\nthird-line-of-key"


def test_a_multi_line_secret_is_masked_whole_and_line_by_line(agent):
    body = (
        'echo "$(get_octopusvariable Key)"\n'
        'echo "alone: first-line-of-key"\necho second-line-of-key >&2\necho "third-line-of-key is here"\necho done'
    )
    _, lines, _ = agent.run(body, Variables=[{"Name": "Key", "Value": SECRET, "IsSensitive": True}])
    assert [line["Text"] for line in lines if line["Stream"] == "stdout"] == [
        MASK,
        MASK,
        MASK,
        f"alone: {MASK}",
        f"{MASK} is here",
        "done",
    ]
    assert [line["Text"] for line in lines if line["Stream"] == "stderr"] == [MASK]
    assert not any(part in line["Text"] for line in lines for part in SECRET.splitlines())


def test_a_multi_line_sensitive_output_variable_is_masked_the_same_way(agent):
    body = (
        "import sys\nfrom octopus import *\nset_octopusvariable('Cert', 'alpha-part\\nbeta-part', True)\n"
        "print('alpha-part')\nprint('x beta-part y', file=sys.stderr)\nfail_step('failed with alpha-part\\nbeta-part')"
    )
    _, lines, status = agent.run(body, "Python")
    assert sorted(line["Text"] for line in lines) == sorted([MASK, f"x {MASK} y"])
    # fail_step's message travels once, as the failure message (the server logs it), masked as a whole.
    assert status["FailureMessage"] == f"failed with {MASK}"


def test_a_secret_cut_by_the_end_of_a_long_line_shows_none_of_itself(agent):
    body = f"printf 'y%.0s' $(seq 1 {MAX_LINE - 4}); echo \"$(get_octopusvariable Pw)\""
    _, lines, _ = agent.run(body, Variables=[{"Name": "Pw", "Value": "hunter2-long-password", "IsSensitive": True}])
    assert lines[0]["Text"] == "y" * (MAX_LINE - 4) + TRUNCATED


def test_a_script_nobody_reads_waits_for_its_reader_and_loses_no_line(tmp_path):
    from tentacle_agent.runner import KEEP_FETCHED_LINES, MAX_UNFETCHED_LINES, READ_CHUNK, ScriptRunner
    from tests.agent.stdio_agent import wait_until

    runner = ScriptRunner(tmp_path / "Work")
    ticket = runner.start({"ScriptBody": "seq 1 200000", "Syntax": "Bash"})
    script = runner.scripts[ticket]
    wait_until(lambda: len(script.lines) >= MAX_UNFETCHED_LINES)
    assert script.state == "Running" and len(script.lines) < MAX_UNFETCHED_LINES + READ_CHUNK // 5, (
        "held back until someone reads (past the bound, at most one more read of numbers of 5 or 6 digits)"
    )
    seen, after, held = [], -1, []
    while True:
        status = runner.status(ticket, after, 10)
        seen += [line["Text"] for line in status["Logs"]]
        after = status["NextSequence"] - 1
        held.append(len(script.lines))
        if status["State"] == "Complete" and not status["HasMore"]:
            break
    assert seen == [str(n) for n in range(1, 200001)]
    assert max(held) <= KEEP_FETCHED_LINES + MAX_UNFETCHED_LINES + READ_CHUNK // 5


def test_a_bash_script_typed_in_a_browser_runs_with_its_crlf_line_endings(agent):
    """A textarea submits CRLF: `id\\r` must not become an unknown command, nor `>&2\\r` a file named `2\\r`."""
    _, lines, status = agent.run("echo one\r\necho two >&2\r\nprintf '%s' done\r\n")
    assert status["ExitCode"] == 0 and sorted(line["Text"] for line in lines) == ["done", "one", "two"], lines
