"""A server running as root runs built-in scripts as REEF_BUILTIN_WORKER_USER (default nobody): they
cannot read var/ (the master key, the secret key, the database), nor the server's environment."""

import os
import pwd

import pytest
from django.conf import settings

from infrastructure.transports import builtin
from infrastructure.transports.builtin import BuiltinTransport
from portal.encryption import encrypt
from tentacle_agent.runner import ScriptRunner
from tests.agent.stdio_agent import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can run scripts as another account")


@pytest.fixture
def fresh_builtin_worker(monkeypatch):
    monkeypatch.setattr(builtin, "_service", None)  # built again, as a starting server builds it
    encrypt("make sure var/master_key exists")
    master_key = settings.VAR_DIR / "master_key"
    assert master_key.exists()
    yield master_key
    monkeypatch.setattr(builtin, "_service", None)


def test_a_built_in_script_runs_as_nobody_and_cannot_read_var(db, fresh_builtin_worker):
    master_key = fresh_builtin_worker
    body = (
        f"id -u; id -G; echo home=$HOME\ncat {master_key} || echo cannot-read-master-key\n"
        f"cat {settings.VAR_DIR / 'secret_key'} || echo cannot-read-secret-key\n"
        f"ls {settings.VAR_DIR} || echo cannot-list-var\n"
        f"tr '\\0' '\\n' < /proc/{os.getpid()}/environ || echo cannot-read-server-environment\n"
    )
    code, lines = BuiltinTransport().run_script(body, "Bash", timeout=30)
    out = [line["Text"] for line in lines if line["Stream"] == "stdout"]
    nobody = pwd.getpwnam("nobody")
    assert out[0] == str(nobody.pw_uid) != "0" and out[1] == str(nobody.pw_gid), "no supplementary groups"
    assert out[2].startswith(f"home={settings.VAR_DIR / 'builtin-worker' / 'Work'}/")
    assert out[3:] == [
        "cannot-read-master-key",
        "cannot-read-secret-key",
        "cannot-list-var",
        "cannot-read-server-environment",
    ]
    key = master_key.read_text().strip()
    assert not any(key in line["Text"] for line in lines)
    assert list((settings.VAR_DIR / "builtin-worker" / "Work").iterdir()) == [], "its work folder is gone"


def test_a_python_step_runs_as_nobody_too(db, fresh_builtin_worker):
    code, lines = BuiltinTransport().run_script(
        "import os\nprint(os.getuid(), os.getcwd() == os.environ['HOME'])", "Python", timeout=30
    )
    assert code == 0 and [line["Text"] for line in lines] == [f"{pwd.getpwnam('nobody').pw_uid} True"]


def test_an_artifact_pointing_at_a_file_of_the_agent_is_not_collected(tmp_path):
    secret = tmp_path / "root-only"
    secret.write_text("root's secret")
    secret.chmod(0o600)
    os.chmod(tmp_path, 0o711)
    runner = ScriptRunner(tmp_path / "Work", run_as="nobody")
    body = (
        f"ln -s {secret} leak.txt; new_octopusartifact leak.txt\n"
        f"ln {secret} hard.txt 2>/dev/null; new_octopusartifact hard.txt\n"
        "echo mine > mine.txt; new_octopusartifact mine.txt"
    )
    ticket = runner.start({"ScriptBody": body, "Syntax": "Bash"})
    wait_until(lambda: runner.status(ticket, -1, 5)["State"] == "Complete")
    collected = runner.complete(ticket)["Artifacts"]
    assert [(a["Name"], a["Length"]) for a in collected] == [("mine.txt", 5)]


def test_an_unknown_account_fails_the_script_with_a_reason(tmp_path):
    from tentacle_agent.runner import RunnerError

    runner = ScriptRunner(tmp_path / "Work", run_as="no-such-account-here")
    with pytest.raises(RunnerError, match="no such account"):
        runner.start({"ScriptBody": "true", "Syntax": "Bash"})
