"""The install script, run for real: from the portal it downloads and checks the agent, creates an
instance under a temporary prefix, registers it (no systemd here: --no-service) and runs it."""

import os
import queue
import subprocess
import threading
import time
import urllib.request

import pytest

from infrastructure.models import Worker
from portal.services.api_keys import create_api_key
from tests.agent.harness import wait_until

pytestmark = pytest.mark.e2e


def output_until(process: subprocess.Popen, text: str, timeout: float = 60) -> str:
    """The process's output up to the first line holding `text`; fails with the output at the deadline
    or when the process ends without saying it (the agent it starts keeps running, so never read to EOF)."""
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"no line with {text!r} in:\n{''.join(seen)}")


def fetch_script(live_reef: str, tmp_path) -> str:
    path = tmp_path / "install.sh"
    path.write_bytes(urllib.request.urlopen(f"{live_reef}/infrastructure/tentacle/install.sh").read())
    return str(path)


def test_the_install_script_installs_registers_and_runs_a_polling_agent(
    live_reef, polling_endpoint, administrator, space, tmp_path
):
    key = create_api_key(actor=administrator, user=administrator, purpose="install")[1]
    script, prefix = fetch_script(live_reef, tmp_path), tmp_path / "opt"
    argv = [
        "bash",
        script,
        "--server",
        live_reef,
        "--workerpool",
        "Default Worker Pool",
        "--name",
        "installed",
        "--polling",
        "--polling-address",
        polling_endpoint,
        "--prefix",
        str(prefix),
        "--no-service",
    ]
    process = subprocess.Popen(
        argv, env={**os.environ, "REEF_API_KEY": key}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        worker = wait_until(lambda: Worker.objects.filter(name="installed").first(), timeout=60)
        assert worker.communication_style == "TentacleActive"
        config = prefix / "instance" / "tentacle.json"
        assert oct(config.stat().st_mode & 0o777) == "0o600" and key not in config.read_text()
        from infrastructure.services.health import check_worker_health

        assert wait_until(lambda: check_worker_health(worker.pk).health_status == "Healthy", timeout=60)
        assert (prefix / "reef-tentacle.pyz").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert key not in output

    # Running it again is safe: the same instance registers again and keeps its worker (same id).
    second = subprocess.Popen(
        argv, env={**os.environ, "REEF_API_KEY": key}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output_until(second, "Registered installed again")
        assert list(Worker.objects.filter(name="installed").values_list("pk", flat=True)) == [worker.pk]
    finally:
        second.terminate()
        second.wait(timeout=20)
    removed = subprocess.run(
        ["bash", script, "--uninstall", "--server", live_reef, "--prefix", str(prefix), "--no-service"],
        env={**os.environ, "REEF_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    assert not prefix.exists() and not Worker.objects.filter(name="installed").exists()


def test_the_install_script_refuses_an_agent_whose_hash_does_not_match(live_reef, tmp_path):
    script = tmp_path / "install.sh"
    text = urllib.request.urlopen(f"{live_reef}/infrastructure/tentacle/install.sh").read().decode()
    script.write_text(text.replace('BUNDLE_SHA256="', 'BUNDLE_SHA256="0000'))
    result = subprocess.run(
        [
            "bash",
            str(script),
            "--server",
            live_reef,
            "--apikey",
            "API-X",
            "--workerpool",
            "P",
            "--prefix",
            str(tmp_path / "opt"),
            "--no-service",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "refusing to install it" in result.stderr
    assert not (tmp_path / "opt" / "reef-tentacle.pyz").exists()


def test_the_install_script_names_a_missing_option(live_reef, tmp_path):
    result = subprocess.run(
        [
            "bash",
            fetch_script(live_reef, tmp_path),
            "--server",
            live_reef,
            "--apikey",
            "API-X",
            "--prefix",
            str(tmp_path / "opt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "at least one --workerpool is required" in result.stderr
