"""Real agent processes for tests: create an instance, register it against a live Reef, run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e.conftest import ROOT, free_port
from tests.waiting import wait_until


def tentacle(home: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "tentacle_agent", *args, "--home", str(home)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tentacle {' '.join(args)} failed: {result.stderr}")
    return result


class Agent:
    def __init__(self, home: Path):
        self.home = home
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def create(self, *, listening_port: int | None = None) -> Agent:
        tentacle(self.home, "create-instance")
        if listening_port:
            self.port = listening_port
            tentacle(self.home, "configure", "--listening", "--port", str(listening_port), "--listen-ip", "127.0.0.1")
        return self

    @property
    def thumbprint(self) -> str:
        return tentacle(self.home, "show-thumbprint").stdout.strip()

    def register(
        self,
        server: str,
        api_key: str,
        *,
        polling: bool,
        pools=("Default Worker Pool",),
        name="agent",
        polling_address: str | None = None,
        extra: tuple = (),
    ) -> subprocess.CompletedProcess:
        args = [
            "register-worker",
            "--server",
            server,
            "--comms-style",
            "TentacleActive" if polling else "TentaclePassive",
            "--name",
            name,
            "--public-hostname",
            "127.0.0.1",
            *extra,
        ]
        for pool in pools:
            args += ["--workerpool", pool]
        if polling_address:
            args += ["--server-comms-address", polling_address]
        return tentacle(self.home, *args, env={"REEF_API_KEY": api_key}, check=False)

    def start(self) -> Agent:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tentacle_agent", "run", "--home", str(self.home)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = []
        for line in self.process.stdout:
            seen.append(line)
            if line.startswith("Reef tentacle"):
                break
        assert seen and seen[-1].startswith("Reef tentacle"), "".join(seen)
        # Keep draining its output so a chatty agent never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def descendant_running(pid: int, command: str) -> bool:
    """Whether a process under `pid` (its children, their children, …) runs exactly `command`."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                )
            except (OSError, ValueError):
                continue
    for child, command_line in commands.items():
        if command_line == command:
            ancestor = parents.get(child)
            while ancestor and ancestor != pid:
                ancestor = parents.get(ancestor)
            if ancestor == pid:
                return True
    return False


__all__ = ["Agent", "tentacle", "wait_until", "free_port", "descendant_running"]
