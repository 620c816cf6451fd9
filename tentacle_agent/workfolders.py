"""A script's work folder: owned through a lock file beside it while its script lives, filled with the
script, its variables and its bootstrap, read back for artifacts, and removed when no live runner owns it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import sys
import threading
from pathlib import Path

from tentacle_agent.bootstraps import (
    BASH_BOOTSTRAP,
    POWERSHELL_BOOTSTRAP,
    PYTHON_BOOTSTRAP,
    PYTHON_MODULE,
    bash_line_endings,
    write_private,
)
from tentacle_agent.errors import RunnerError
from tentacle_agent.processes import python_for
from tentacle_agent.script import Script

MAX_ARTIFACT_BYTES = 100 * 1024 * 1024
TICKET = re.compile(r"^[0-9a-f]{16,64}$")
SECRET_FILES = ("variables.json", "bootstrap.sh")


def claim(work_root: Path, ticket: str) -> int:
    """A lock file beside the work folder, held while its script lives here: a folder whose lock
    nobody holds was left by an agent that died. Locked before it gets its name, so no other
    runner ever sees it unlocked."""
    temporary = work_root / f".{ticket}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        os.link(temporary, work_root / f"{ticket}.lock")  # never replaces another runner's lock
    except FileExistsError:
        os.close(fd)
        raise RunnerError(f"Script {ticket} is being run by another runner on this machine.") from None
    finally:
        temporary.unlink()
    return fd


def release(work_root: Path, ticket: str, fd: int | None) -> None:
    try:
        (work_root / f"{ticket}.lock").unlink()
    except OSError:
        pass
    if fd is not None:
        os.close(fd)


def remove_leftovers(work_root: Path) -> list[str]:
    """Remove work folders no live runner owns (their agent died before cleaning up)."""
    removed = []
    for entry in work_root.iterdir():
        if not entry.is_dir() or entry.is_symlink() or not TICKET.match(entry.name):
            continue
        lock_path = work_root / f"{entry.name}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None  # a folder from an agent without locks
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its runner is alive
        shutil.rmtree(entry, ignore_errors=True)
        release(work_root, entry.name, fd)
        removed.append(entry.name)
    return removed


def prepare(
    script: Script, account: pwd.struct_passwd | None, package_cache, environment: dict | None
) -> tuple[list[str], str | None]:
    """Write the script, its variables and its packages into its work folder; returns the argv that runs it
    there, and for bash its bootstrap (handed over by open_bash_bootstrap, never written here)."""
    request, work = script.request, script.work
    variables = request.get("Variables") or []
    for package in request.get("Packages") or []:
        if package_cache is None or not package_cache.has(package.get("Sha256", "")):
            raise RunnerError(
                f"Package {package.get('PackageId')} {package.get('Version')} is not in this agent's cache."
            )
        package_cache.extract(package["Sha256"], work / str(package.get("PackageId", "package")))
    syntax, body = request.get("Syntax", "Bash"), request["ScriptBody"]
    if syntax == "Python":
        # octopus.py reads variables.json when imported, at any time: it stays until the script ends.
        write_private(work / "variables.json", json.dumps(variables))
        write_private(work / "octopus.py", PYTHON_MODULE)
        write_private(work / "bootstrap.py", PYTHON_BOOTSTRAP)
        write_private(work / "script.py", body)
        return [_python_of(account, environment) if account else sys.executable, "-u", "bootstrap.py"], None
    if syntax == "PowerShell":
        write_private(work / "variables.json", json.dumps(variables))
        write_private(work / "bootstrap.ps1", POWERSHELL_BOOTSTRAP)
        write_private(work / "script.ps1", body)
        return ["pwsh", "-NoProfile", "-NonInteractive", "-File", "bootstrap.ps1"], None
    # Bash needs no variables.json: the bootstrap holds the values, and bash reads it through a descriptor.
    assignments = "".join(
        f"octopus_parameters[{shlex.quote(v['Name'])}]={shlex.quote(str(v.get('Value', '')))}\n" for v in variables
    )
    write_private(work / "script.sh", bash_line_endings(body))
    bootstrap = (
        "exec {REEF_BOOTSTRAP_FD}<&-; unset REEF_BOOTSTRAP_FD\ndeclare -A octopus_parameters\n"
        + assignments
        + BASH_BOOTSTRAP
        + "source ./script.sh\n"
    )
    return list(BASH_ARGV), bootstrap


BASH_ARGV = ("bash", "bootstrap.sh")
PIPE_MAX_BYTES = 1024 * 1024  # Linux's default /proc/sys/fs/pipe-max-size


def open_bash_bootstrap(work: Path, bootstrap: str, account: pwd.struct_passwd | None) -> tuple[int, list[str]]:
    """The descriptor bash reads its bootstrap from (the caller passes it to bash, then closes it) and the argv.
    A bootstrap that fits goes through a pipe: the values in it never touch the disk, and a pipe costs a few
    microseconds where creating a file on a file system busy creating and deleting them costs ~0.1 ms.
    A larger one goes through a file unlinked at once: its values never lie on disk while the script runs.
    Either way bash needs no `rm` (nor `dirname`: it starts in the work folder), each a fork and an exec
    before the first line. `source` reads the whole of it before running it; the bootstrap then closes the
    descriptor, so the script's processes never inherit it. $0 stays "bootstrap.sh". Bash opens /dev/fd/N
    anew, which checks the owner: under `account` the account owns the pipe or file."""
    data = bootstrap.encode()
    fd = _filled_pipe(data)
    if fd is None:
        path = work / "bootstrap.sh"
        write_private(path, bootstrap)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        path.unlink()
    if account is not None:
        try:
            os.fchown(fd, account.pw_uid, account.pw_gid)
        except OSError:
            os.close(fd)
            raise
    return fd, ["bash", "-c", f"REEF_BOOTSTRAP_FD={fd}; . /dev/fd/$REEF_BOOTSTRAP_FD", "bootstrap.sh"]


def _filled_pipe(data: bytes) -> int | None:
    """The read end of a pipe holding all of `data` with its write end closed, or None when it does not fit
    (nobody reads it yet: a write that waited for room would wait forever)."""
    read, write = os.pipe()  # both close on exec: the caller passes the read end on by name
    try:
        if len(data) > 64 * 1024 and hasattr(fcntl, "F_SETPIPE_SZ"):
            # Past this account's share of pipe memory the pipe stays small, and the file will do.
            with contextlib.suppress(OSError):
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, min(len(data), PIPE_MAX_BYTES))
        os.set_blocking(write, False)
        with contextlib.suppress(BlockingIOError):
            if os.write(write, data) == len(data):
                return read
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    os.close(read)
    return None


def read_artifact(path: Path, run_as: str | None) -> bytes | None:
    """The artifact's bytes, or None. Under `run_as` only a file that account owns is read, without
    following a final symbolic link: the agent never hands out a file the script could not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        account = pwd.getpwnam(run_as) if run_as else None
        if (
            not _is_regular(info.st_mode)
            or info.st_size > MAX_ARTIFACT_BYTES
            or (account is not None and info.st_uid != account.pw_uid)
        ):
            return None
        return f.read(MAX_ARTIFACT_BYTES + 1)[:MAX_ARTIFACT_BYTES]


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _python_of(account: pwd.struct_passwd, environment: dict | None) -> str:
    python = python_for(account, environment)
    if python is None:
        raise RunnerError(f"No Python 3 that the account {account.pw_name!r} may run was found on the PATH.")
    return python
