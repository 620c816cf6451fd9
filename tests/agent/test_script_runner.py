"""The script runner, with real child processes: what a deployment step can rely on."""

import hashlib
import io
import time
import zipfile

import pytest

from tentacle_agent.packages import PackageCache, PackageError
from tentacle_agent.runner import MASK, ScriptRunner
from tentacle_agent.service import ScriptService
from tests.waiting import wait_until


@pytest.fixture
def runner(tmp_path):
    return ScriptRunner(tmp_path / "Work", PackageCache(tmp_path / "Packages"))


def run(runner, body, syntax="Bash", variables=(), timeout=None, mutex=None):
    ticket = runner.start(
        {
            "ScriptBody": body,
            "Syntax": syntax,
            "Variables": list(variables),
            "TimeoutSeconds": timeout,
            "IsolationMutex": mutex,
        }
    )
    status = runner.status(ticket, -1, 30)
    while status["State"] != "Complete":
        status = runner.status(ticket, -1, 30)
    return ticket, status


def texts(status, stream=None):
    return [line["Text"] for line in status["Logs"] if stream is None or line["Stream"] == stream]


def test_output_variables_and_variables_in_bash(runner):
    _, status = run(
        runner,
        'echo "env is $(get_octopusvariable Octopus.Environment.Name)"\nset_octopusvariable Url "https://x"',
        variables=[{"Name": "Octopus.Environment.Name", "Value": "Production"}],
    )
    assert texts(status) == ["env is Production"] and status["ExitCode"] == 0
    assert status["OutputVariables"] == [{"Name": "Url", "Value": "https://x", "IsSensitive": False}]


@pytest.mark.parametrize("size", [10, 100_000, 3_000_000])  # a pipe, a pipe made larger, a file unlinked at once
def test_bash_gets_its_variables_however_large(runner, size):
    _, status = run(
        runner,
        'echo "${#octopus_parameters[Big]} $(get_octopusvariable Quoted)"; ls -A',
        variables=[{"Name": "Big", "Value": "x" * size}, {"Name": "Quoted", "Value": 'it\'s "$HOME"'}],
    )
    assert texts(status) == [f'{size} it\'s "$HOME"', "script.sh"] and status["ExitCode"] == 0


def test_python_steps_have_the_same_helpers(runner):
    _, status = run(
        runner,
        "from octopus import *\nprint(get_octopusvariable('Name'))\nset_octopusvariable('Answer', 42)\n"
        "write_warning('careful')",
        "Python",
        variables=[{"Name": "Name", "Value": "reef"}],
    )
    assert texts(status) == ["reef", "careful"]
    assert [line["Category"] for line in status["Logs"]] == ["Info", "Warning"]
    assert status["OutputVariables"][0]["Value"] == "42"


def test_sensitive_values_are_masked_in_every_line_and_output_variable(runner):
    _, status = run(
        runner,
        'echo "password is $(get_octopusvariable Pw)" >&2\nset_octopusvariable Token tok-789 --sensitive\necho tok-789',
        variables=[{"Name": "Pw", "Value": "hunter2", "IsSensitive": True}],
    )
    assert texts(status, "stderr") == [f"password is {MASK}"] and texts(status, "stdout") == [MASK]
    assert status["OutputVariables"] == [{"Name": "Token", "Value": "tok-789", "IsSensitive": True}]


def test_stdout_and_stderr_are_kept_apart(runner):
    _, status = run(runner, "echo out; echo err >&2; exit 3")
    assert texts(status, "stdout") == ["out"] and texts(status, "stderr") == ["err"]
    assert [line["Category"] for line in status["Logs"] if line["Stream"] == "stderr"] == ["Error"]
    assert status["ExitCode"] == 3 and "exited with code 3" in status["FailureMessage"]


def test_fail_step_fails_with_its_message(runner):
    _, status = run(runner, 'fail_step "Database is read-only"\necho never')
    assert (
        status["ExitCode"] == 1 and status["FailureMessage"] == "Database is read-only" and "never" not in texts(status)
    )


def test_artifacts_are_collected_on_completion(runner):
    ticket, status = run(runner, "echo report > report.txt\nnew_octopusartifact report.txt Report")
    assert status["Artifacts"][0]["Name"] == "Report"
    collected = runner.complete(ticket)["Artifacts"][0]
    assert collected["Name"] == "Report" and collected["Length"] == 7
    assert not (runner.work_root / ticket).exists(), "the work folder is cleaned up"


def test_cancel_kills_the_whole_process_tree(runner, tmp_path):
    marker = tmp_path / "grandchild.pid"
    ticket = runner.start({"ScriptBody": f"bash -c 'echo $$ > {marker}; sleep 300' &\nsleep 300", "Syntax": "Bash"})
    wait_until(marker.exists, timeout=10, what="the grandchild started")
    grandchild = int(marker.read_text())
    runner.cancel(ticket)
    status = runner.status(ticket, -1, 10)
    while status["State"] != "Complete":
        status = runner.status(ticket, -1, 10)

    def dead(pid):  # gone, or a zombie waiting to be reaped (nothing runs any more)
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(lambda: dead(grandchild), timeout=5, what="the grandchild killed")
    assert status["FailureMessage"] == "The script was cancelled."


def test_a_script_past_its_timeout_is_stopped(runner):
    started = time.monotonic()
    _, status = run(runner, "sleep 60", timeout=1)
    assert time.monotonic() - started < 10 and "Timed out after 1 seconds" in status["FailureMessage"]


def test_scripts_with_the_same_mutex_take_turns_and_others_overlap(runner):
    def window(mutex):
        tickets = [
            runner.start({"ScriptBody": "date +%s.%N; sleep 1; date +%s.%N", "Syntax": "Bash", "IsolationMutex": mutex})
            for _ in range(2)
        ]
        spans = []
        for ticket in tickets:
            status = runner.status(ticket, -1, 30)
            while status["State"] != "Complete":
                status = runner.status(ticket, -1, 30)
            numbers = [float(t) for t in texts(status) if t[0].isdigit()]
            spans.append((numbers[0], numbers[1]))
        spans.sort()
        return spans

    first, second = window("deploy-db")
    assert second[0] >= first[1], "with a mutex the second script starts after the first ends"
    first, second = window(None)
    assert second[0] < first[1], "without one they overlap"


def test_a_long_status_wait_returns_as_soon_as_a_line_arrives(runner):
    ticket = runner.start({"ScriptBody": "sleep 0.5; echo now; sleep 5", "Syntax": "Bash"})
    started = time.monotonic()
    status = runner.status(ticket, -1, 20)
    assert "now" in texts(status) and time.monotonic() - started < 3
    runner.cancel(ticket)


def test_the_package_cache_checks_hashes_and_keeps_within_its_limit(tmp_path):
    cache = PackageCache(tmp_path / "cache", limit_bytes=2500)
    blobs = [bytes([n]) * 1000 for n in range(3)]
    with pytest.raises(PackageError, match="rejected"):
        cache.add(hashlib.sha256(b"x").hexdigest(), b"not x")
    for n, blob in enumerate(blobs):
        cache.add(hashlib.sha256(blob).hexdigest(), blob, f"p{n}.bin")
        time.sleep(0.01)
    present = [cache.has(hashlib.sha256(blob).hexdigest()) for blob in blobs]
    assert present == [False, True, True], "the least recently used package was evicted"


def test_a_step_can_use_an_uploaded_package(tmp_path):
    service = ScriptService(tmp_path)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("app/version.txt", "1.2.3")
    data = archive.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    import base64

    assert service.handle({"Id": "1", "Method": "HasPackage", "Params": {"Sha256": sha}})["Result"] == {
        "Present": False
    }
    service.handle(
        {
            "Id": "2",
            "Method": "UploadPackage",
            "Params": {"Sha256": sha, "FileName": "app.zip", "ContentBase64": base64.b64encode(data).decode()},
        }
    )
    ticket = service.handle(
        {
            "Id": "3",
            "Method": "StartScript",
            "Params": {
                "ScriptBody": "cat MyApp/app/version.txt",
                "Syntax": "Bash",
                "Packages": [{"PackageId": "MyApp", "Version": "1.2.3", "Sha256": sha}],
            },
        }
    )["Result"]["Ticket"]
    status = service.runner.status(ticket, -1, 10)
    while status["State"] != "Complete":
        status = service.runner.status(ticket, -1, 10)
    assert texts(status) == ["1.2.3"]


@pytest.mark.parametrize(
    "envelope,kind",
    [
        ({"Id": "1", "Method": "Nope"}, "BadRequest"),
        ("not an object", "BadRequest"),
        ({"Id": "1", "Method": "GetStatus", "Params": {"Ticket": "missing"}}, "NotFound"),
        ({"Id": "1", "Method": "StartScript", "Params": {"ScriptBody": "x", "Syntax": "Cobol"}}, "BadRequest"),
        ({"Id": "1", "Method": "UploadPackage", "Params": {"Sha256": "../../etc", "ContentBase64": ""}}, "BadRequest"),
    ],
)
def test_malformed_requests_get_a_clear_error(tmp_path, envelope, kind):
    response = ScriptService(tmp_path).handle(envelope)
    assert response["Error"]["Kind"] == kind and response["Error"]["Message"]
