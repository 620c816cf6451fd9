"""The apps stack up, and no app imports one above it (docs/architecture.md):

    portal ← servertasks ← infrastructure ← deployments

servertasks sits beneath infrastructure and deployments because health checks and deployments are both
server tasks. tentacle_agent runs on worker machines: it imports none of the apps (they may import it).
Every import counts, at the top of a module or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["portal", "servertasks", "infrastructure", "deployments"]
AGENT = "tentacle_agent"

# The project's wiring knows every app by design: root URLs, websocket routes, the command that serves
# them all. Each entry is a module and the apps it may reach above itself, with why.
WIRING = {
    "portal/urls.py": {"infrastructure", "deployments"},  # root URLs: every app's pages
    "portal/api/urls.py": {"deployments"},  # the API's root routes (/api/tasks)
    "portal/routing.py": {"servertasks"},  # websocket routes (/ws/tasks/<id>/)
    "portal/management/commands/serve.py": {"infrastructure", "deployments"},  # first-run demo data of each app
    # Known debt: Configuration ➜ Certificates is a portal page about infrastructure's server certificate.
    "portal/views/configuration.py": {"infrastructure"},
}


def app_modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


def imported_apps(module: str, tree: ast.Module) -> dict[str, int]:
    """{top-level package: first line} of every import in the module."""
    found: dict[str, int] = {}
    package = module.rsplit("/", 1)[0].split("/")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package[0] if node.level else (node.module or "")]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


@pytest.mark.parametrize("app", LAYERS)
def test_no_app_imports_an_app_above_it(app):
    above = set(LAYERS[LAYERS.index(app) + 1 :])
    offences = []
    for module, tree in app_modules(app):
        allowed = WIRING.get(module, set())
        for name, line in imported_apps(module, tree).items():
            if name in above and name not in allowed:
                offences.append(f"{module}:{line} imports {name}, which sits above {app}")
    assert offences == []


def test_the_agent_imports_no_app():
    offences = [
        f"{module}:{line} imports {name}"
        for module, tree in app_modules(AGENT)
        for name, line in imported_apps(module, tree).items()
        if name in LAYERS or name == "django"
    ]
    assert offences == []


def test_the_wiring_exceptions_are_still_needed():
    """An exception nothing uses any more is removed, so the list only ever shrinks."""
    for module, allowed in WIRING.items():
        app = module.split("/")[0]
        used = set(imported_apps(module, ast.parse((ROOT / module).read_text()))) & set(LAYERS[LAYERS.index(app) + 1 :])
        assert allowed <= used, f"{module} no longer imports {sorted(allowed - used)}: drop it from WIRING"
