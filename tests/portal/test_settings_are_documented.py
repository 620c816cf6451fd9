"""Every environment variable settings.py reads is in README's settings table, and nothing else reads one.

The names are read from settings.py's source (the calls that read the environment), not from a list
kept by hand, so a new variable without a README row fails here."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READERS = {"envbool", "envint", "envfloat", "envlist", "_public_url"}


def _names_settings_reads() -> set[str]:
    names = set()
    for node in ast.walk(ast.parse((ROOT / "portal" / "settings.py").read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            reader = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            environ_get = reader == "get" and ast.unparse(func).startswith("os.environ.")
            if (reader in READERS or environ_get) and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
            names.update(k.value.value for k in node.keywords if k.arg == "env" and isinstance(k.value, ast.Constant))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            if isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
    return names


def _names_in_readme_table() -> set[str]:
    section = (ROOT / "README.md").read_text().split("## Settings (environment)")[1].split("\n## ")[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row)}


def test_every_variable_settings_reads_has_a_row_in_the_readme():
    read = _names_settings_reads()
    assert {"DATABASE_URL", "REEF_PUBLIC_URL", "REEF_MASTER_KEY", "PORT", "SECRET_KEY"} <= read  # the parse works
    assert sorted(read - _names_in_readme_table()) == []


def test_the_readme_lists_no_variable_that_settings_does_not_read():
    assert sorted(_names_in_readme_table() - _names_settings_reads()) == []


def test_no_server_module_reads_the_environment_for_its_configuration():
    # Only settings.py reads configuration; the agent is standalone and reads its own. Setting
    # DJANGO_SETTINGS_MODULE or CELERY_SKIP_CHECKS and passing the environment on to child processes are
    # not reads. The supervisor loads no Django (it stays small): it reads only the plan `serve` handed it.
    allowed = re.compile(
        r"os\.environ\.setdefault\(\"(DJANGO_SETTINGS_MODULE|CELERY_SKIP_CHECKS)\"|os\.environ\.copy\(\)"
        r"|_INHERITED"
    )
    readers = []
    for app in ("portal", "infrastructure", "deployments", "servertasks"):
        for path in sorted((ROOT / app).rglob("*.py")):
            if path.name in ("settings.py", "supervisor.py") or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"os\.environ|os\.getenv", line) and not allowed.search(line):
                    readers.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert readers == []
