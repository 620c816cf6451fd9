"""The supervisor of `make run`: a child that keeps dying is restarted alone with growing backoff (1, 2,
4 s …), back to 1 s once it has stayed up; its siblings are never touched; it stops only when asked."""

import io
import sys
import threading

from portal.management.commands.serve import Command
from tests.faults.harness import alive, wait_until


def test_a_dying_child_is_restarted_alone_with_growing_backoff_and_stops_only_when_asked(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    command.children, command.stopping, command.stable_seconds = [], False, 3.0
    flag = tmp_path / "stay-up"
    # Dies at once until the flag exists; then stays up.
    crasher = f"import os, sys, time\nif not os.path.exists({str(flag)!r}): sys.exit(3)\ntime.sleep(3.5)\nsys.exit(4)"
    command.start("crasher", [sys.executable, "-c", crasher], env=None)
    command.start("steady", [sys.executable, "-c", "import time; time.sleep(60)"], env=None)
    steady = command.children[1].process.pid
    supervisor = threading.Thread(target=command.supervise, daemon=True)
    supervisor.start()
    try:
        wait_until(lambda: command.children[0].restarts >= 3, timeout=20, what="three restarts")
        said = err.getvalue()
        assert "crasher exited with code 3; restarting it in 1s." in said
        assert "restarting it in 2s." in said and "restarting it in 4s." in said
        flag.write_text("")  # now it stays up longer than stable_seconds, then dies once more
        wait_until(
            lambda: "exited with code 4; restarting it in 1s." in err.getvalue(),
            timeout=30,
            what="backoff back to 1 s after staying up",
        )
        assert command.children[1].process.pid == steady and alive(steady)  # the sibling was never touched
        assert "Restarted crasher" in out.getvalue()
    finally:
        command.stopping = True
        supervisor.join(20)
    assert not supervisor.is_alive() and "Reef stopped." in out.getvalue()
    assert not alive(steady)
