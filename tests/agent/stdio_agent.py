"""A real agent process for runner tests that need no server: `tentacle stdio`, one JSON envelope a line."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from tests.waiting import wait_until  # noqa: F401 - re-exported: the agent tests import it from here

ROOT = Path(__file__).resolve().parents[2]


class StdioAgent:
    def __init__(self, home: Path):
        self.home = home
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tentacle_agent", "stdio", "--home", str(home)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        self.answers: dict[str, queue.Queue] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            answer = json.loads(line)
            with self.lock:
                box = self.answers.setdefault(answer["Id"], queue.Queue())
            box.put(answer)

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        request_id = uuid.uuid4().hex
        with self.lock:
            box = self.answers.setdefault(request_id, queue.Queue())
            self.process.stdin.write(
                json.dumps({"Id": request_id, "Method": method, "Params": params}).encode() + b"\n"
            )
            self.process.stdin.flush()
        answer = box.get(timeout=timeout)
        if "Error" in answer:
            raise AssertionError(f"{method}: {answer['Error']}")
        return answer["Result"]

    def run(self, body: str, syntax: str = "Bash", **params) -> tuple[str, list[dict], dict]:
        """Start a script and fetch every line until it completes, as the server does."""
        ticket = self.call("StartScript", ScriptBody=body, Syntax=syntax, **params)["Ticket"]
        lines: list[dict] = []
        while True:
            status = self.call(
                "GetStatus", Ticket=ticket, AfterSequence=lines[-1]["Sequence"] if lines else -1, WaitSeconds=10
            )
            lines += status["Logs"]
            if status["State"] == "Complete" and not status["HasMore"]:
                return ticket, lines, status

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # end of input: the agent cancels its scripts and exits
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def live_processes_marked(ticket: str) -> list[int]:
    """Processes still running (not zombies) whose environment carries the script's marker."""
    from tentacle_agent.runner import marked_processes

    return marked_processes(ticket)
