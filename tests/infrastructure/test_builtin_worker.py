"""The built-in worker runs scripts on the server through the same script service as agents."""

from infrastructure.transports.builtin import BuiltinTransport


def test_the_builtin_worker_runs_a_script_and_reports_its_output(db):
    code, lines = BuiltinTransport().run_script("echo from the server; exit 2", "Bash", timeout=30)
    assert code == 2 and [line["Text"] for line in lines] == ["from the server"]


def test_the_builtin_worker_reports_its_capabilities(db):
    health = BuiltinTransport().health()
    assert "bash" in health["Shells"] and health["Transport"] == "builtin"


def test_scripts_on_the_builtin_worker_cannot_see_the_servers_secrets(db, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/reef")
    code, lines = BuiltinTransport().run_script('echo "db=${DATABASE_URL:-none} path=${PATH:+set}"', "Bash", timeout=30)
    assert [line["Text"] for line in lines] == ["db=none path=set"]
