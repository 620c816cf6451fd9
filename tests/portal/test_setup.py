"""Set-up from the environment: deploy checks, the secret key, the first administrator, built-ins."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command

from portal.models import Space, Team, User, UserRole

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, env=None, cwd=ROOT):
    # A clean environment, as a deployment has: no test-only switches.
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "REEF_TEST_FAST_HASHER"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_profile_passes_djangos_deploy_checks(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={"DEBUG": "0", "REEF_HTTPS": "1", "SECRET_KEY": "x" * 60 + "Y2z!", "REEF_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_secret_key_is_generated_once_into_var_with_owner_only_access(tmp_path):
    env = {"REEF_VAR_DIR": str(tmp_path), "SECRET_KEY": "", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert _manage("check", env=env).returncode == 0
    key_file = tmp_path / "secret_key"
    first = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(first) > 40
    _manage("check", env=env)
    assert key_file.read_text() == first


def test_a_malformed_boolean_setting_is_a_clear_error(tmp_path):
    result = _manage("check", env={"DEBUG": "maybe", "REEF_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_the_first_administrator_comes_from_the_environment(db, settings, capsys):
    # What settings.py read from REEF_ADMIN_USERNAME / REEF_ADMIN_PASSWORD.
    settings.REEF_ADMIN_USERNAME, settings.REEF_ADMIN_PASSWORD = "ops", "Unattended-setup-42"
    call_command("ensure_admin")
    admin = User.objects.get(username="ops")
    assert admin.check_password("Unattended-setup-42") and admin.is_superuser
    assert admin in Team.objects.get(name="Octopus Administrators").members.all()
    call_command("ensure_admin")  # safe to run again
    assert "already exists" in capsys.readouterr().out and User.objects.filter(is_superuser=True).count() == 1


def test_a_generated_first_password_is_printed_once(db, settings, capsys):
    settings.REEF_ADMIN_USERNAME, settings.REEF_ADMIN_PASSWORD = "admin", ""
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = out.split("password:")[1].split()[0]
    assert User.objects.get(username="admin").check_password(password)


def test_the_built_ins_always_exist(db):
    assert Space.objects.default().name == "Default"
    assert UserRole.objects.filter(is_built_in=True).count() >= 8
    assert Team.objects.get(name="Everyone").includes_everyone
