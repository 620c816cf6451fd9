"""The supervisor of `manage.py serve`: a child that dies is restarted alone, with backoff (1, 2, 4 … 30 s;
back to 1 s once it has stayed up STABLE_SECONDS), and each restart is logged. Ctrl-C or SIGTERM stops
every child, in reverse order.

It imports nothing from Django or Reef's apps: once Reef is set up, serve execs this file (same pid,
same children) so the process that only watches the others costs a few MB, not a Django process.
What to supervise arrives in REEF_SUPERVISE (JSON), which it takes out of the environment its
children inherit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STABLE_SECONDS = 60.0  # a child up this long is healthy again: its next restart waits BACKOFF_FIRST
STOP_SECONDS = 15.0


class Adopted:
    """A child started before the exec (the embedded Redis): still this process's child, watched by pid."""

    def __init__(self, pid: int, args: list[str]):
        self.pid, self.args, self.returncode = pid, args, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    process: subprocess.Popen | Adopted
    started: float = field(default_factory=time.monotonic)
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None  # set while it waits to be restarted
    restarts: int = 0

    def spawn(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started, self.restart_at = time.monotonic(), None

    def kill_leftovers(self) -> None:
        """Its own session: whatever it started (pool processes, scripts) goes with it."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    """Starts and watches children; `say` and `complain` write a line to the output and the error output."""

    stable_seconds = STABLE_SECONDS
    stop_seconds = STOP_SECONDS

    def say(self, text: str) -> None:
        print(text, flush=True)

    def complain(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None) -> None:
        # Own session: Ctrl-C reaches only this supervisor, which stops the children in order.
        self.children.append(Child(name, argv, env, subprocess.Popen(argv, env=env, start_new_session=True)))

    def supervise(self) -> None:
        """Restarts each child that died, alone, with backoff; returns when asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is None and child.process.poll() is not None:
                    child.kill_leftovers()
                    if now - child.started >= self.stable_seconds:
                        child.backoff = BACKOFF_FIRST
                    child.restart_at = now + child.backoff
                    self.complain(
                        f"{child.name} exited with code {child.process.returncode}; "
                        f"restarting it in {child.backoff:.0f}s."
                    )
                    child.backoff = min(child.backoff * 2, BACKOFF_MAX)
                elif child.restart_at is not None and now >= child.restart_at:
                    try:
                        child.spawn()
                    except OSError as error:
                        child.restart_at = now + child.backoff
                        self.complain(
                            f"{child.name} could not be restarted ({error}); trying again in {child.backoff:.0f}s."
                        )
                        continue
                    child.restarts += 1
                    self.say(f"Restarted {child.name} (pid {child.process.pid}, restart {child.restarts}).")
            time.sleep(0.2)
        self.stop_children()

    def stop(self, signum, frame) -> None:
        self.stopping = True

    def stop_children(self) -> None:
        # Reverse order: web and Celery before the Redis they use.
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + self.stop_seconds
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.complain(f"{child.name} did not stop in time; killing it.")
                child.process.kill()
                child.process.wait()
            child.kill_leftovers()
        self.say("Reef stopped.")

    def handover(self, planned: list[tuple[str, list[str]]]) -> dict:
        """What the exec'd supervisor needs: the children started so far (adopted by pid) and those to start
        (with the supervisor's environment)."""
        return {
            "stable_seconds": self.stable_seconds,
            "stop_seconds": self.stop_seconds,
            "children": [
                {"name": c.name, "argv": c.argv, "pid": c.process.pid, "own_env": c.env is not None}
                for c in self.children
            ]
            + [{"name": name, "argv": argv, "own_env": True} for name, argv in planned],
        }


def main() -> None:
    supervisor = Supervisor()
    supervisor.children, supervisor.stopping = [], False
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, supervisor.stop)
    # serve blocked these across the exec, so none went unhandled in between; pending ones arrive now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    plan = json.loads(os.environ.pop("REEF_SUPERVISE"))
    supervisor.stable_seconds, supervisor.stop_seconds = plan["stable_seconds"], plan["stop_seconds"]
    for child in plan["children"]:
        env = dict(os.environ) if child["own_env"] else None
        if child.get("pid"):
            supervisor.children.append(Child(child["name"], child["argv"], env, Adopted(child["pid"], child["argv"])))
        elif not supervisor.stopping:
            supervisor.start(child["name"], child["argv"], env)
    supervisor.supervise()


if __name__ == "__main__":
    main()
