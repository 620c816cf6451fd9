"""Processes and accounts on this machine: scripts' marked descendants, the subreaper, a Python an account may run."""

from __future__ import annotations

import ctypes
import os
import pwd
import stat
import sys
from pathlib import Path

MARKER = "REEF_SCRIPT_TICKET"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants of scripts become this process's children (Linux), so none escapes as a
    child of init; the runner reaps them. False where the platform has no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def proc_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def marked_processes(ticket: str) -> list[int]:
    """Live processes whose environment carries the ticket's marker (a zombie's environment reads empty)."""
    needle = f"{MARKER}={ticket}".encode()
    found = []
    for pid in proc_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def usable_by(path: str, account: pwd.struct_passwd) -> bool:
    """Whether the account can execute `path`: every folder on the way searchable, the file executable."""

    def allowed(info: os.stat_result, user: int, group: int, other: int) -> bool:
        if info.st_uid == account.pw_uid:
            return bool(info.st_mode & user)
        if info.st_gid == account.pw_gid:
            return bool(info.st_mode & group)
        return bool(info.st_mode & other)

    real = Path(os.path.realpath(path))
    try:
        if not allowed(real.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
        return all(allowed(folder.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH) for folder in real.parents)
    except OSError:
        return False


def python_for(account: pwd.struct_passwd, environment: dict | None) -> str | None:
    """A Python 3 the account can run: this one if it may, else the first `python3` on the scripts' PATH
    it may (this one may live in a folder only the agent's account can enter)."""
    candidates = [getattr(sys, "_base_executable", "") or sys.executable, sys.executable]
    path = (environment if environment is not None else os.environ).get("PATH") or os.defpath
    candidates += [os.path.join(folder, "python3") for folder in path.split(os.pathsep) if folder]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and usable_by(candidate, account):
            return os.path.realpath(candidate)
    return None


def zombie_children(me: int) -> set[int]:
    """Children of `me` that have exited and wait to be reaped (a zombie's pid is not reused until then)."""
    found = set()
    for pid in proc_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            found.add(pid)
    return found


def reap(pids) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
