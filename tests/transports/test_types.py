"""The script service contract is typed on both sides: mypy checks infrastructure/transports/,
tentacle_agent/ and the rest of pyproject.toml's [tool.mypy] files, so a message shape that drifts fails CI."""

import subprocess
import sys

from tests.e2e.conftest import ROOT


def test_the_transports_and_the_agent_type_check_clean():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
