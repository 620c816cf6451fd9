"""The script runner: the one place scripts run, whatever transport asked (DESIGN.md).

1. A ticket (chosen by the server, else here) gets a work folder with the script, its variables and a
   bootstrap (Octopus's `get_octopusvariable`, `set_octopusvariable`, `new_octopusartifact`,
   `fail_step`, `write_warning`…). A repeated StartScript with a known ticket starts nothing.
2. The child runs in its own session, marked by `REEF_SCRIPT_TICKET=<ticket>` in its environment; one
   reader takes stdout and stderr through a selector in bounded chunks, so lines are numbered in the
   order they were read, and a line longer than MAX_LINE is cut and the rest of it discarded.
3. Service messages (`##octopus[...]`) are taken out of the output and recorded; every other line is
   masked (sensitive values, and each line of a multi-line one) and numbered before anyone reads it.
4. `status()` long-polls on a Condition, so a reader hears of a new line or the end at once.
5. Cancel and timeout kill the process group and every process carrying the ticket's marker (`setsid`
   daemons included): SIGTERM, then SIGKILL after a grace period.
6. Nothing stays behind: secrets files go as soon as they are not needed, the work folder at
   CompleteScript, or after FORGET_AFTER_SECONDS when nobody collects it, or at the next start of an
   agent whose previous run died (a work folder is owned through a lock held while its script lives).

Memory is bounded per script: at most MAX_UNFETCHED_BYTES / MAX_UNFETCHED_LINES of lines nobody has
fetched yet, plus what one READ_CHUNK read holds (past that the runner stops reading the child until the caller
catches up: the child
blocks on its full pipe, nothing is lost), plus the last KEEP_FETCHED_LINES lines already fetched
(kept so a GetStatus retried after a lost answer gets them again).

script.py holds one script's lines, bootstraps.py what its work folder holds, workfolders.py how a work folder
is owned, filled, read and removed, processes.py how its processes are found and killed.
"""

from __future__ import annotations

import base64
import collections
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

from tentacle_agent.bootstraps import BASH_BOOTSTRAP, bash_line_endings
from tentacle_agent.errors import NotFound, RunnerError
from tentacle_agent.processes import MARKER, become_subreaper, marked_processes, reap, zombie_children
from tentacle_agent.script import (
    KEEP_FETCHED_LINES,
    MASK,
    MAX_LINE,
    MAX_UNFETCHED_LINES,
    TRUNCATED,
    PipeBuffer,
    Script,
    secret_forms,
)
from tentacle_agent.workfolders import (
    SECRET_FILES,
    TICKET,
    claim,
    open_bash_bootstrap,
    prepare,
    read_artifact,
    release,
    remove_leftovers,
)

# What other modules import from here, as they always have.
__all__ = [
    "BASH_BOOTSTRAP",
    "FORGET_AFTER_SECONDS",
    "KEEP_FETCHED_LINES",
    "MARKER",
    "MASK",
    "MAX_LINE",
    "MAX_UNFETCHED_LINES",
    "READ_CHUNK",
    "TRUNCATED",
    "NotFound",
    "RunnerError",
    "Script",
    "ScriptRunner",
    "bash_line_endings",
    "marked_processes",
    "secret_forms",
]

READ_CHUNK = 64 * 1024
KILL_GRACE_SECONDS = 3
DRAIN_SECONDS = 5  # after the script exits, how long its background children may keep the pipes open
FORGET_AFTER_SECONDS = 15 * 60


class ScriptRunner:
    def __init__(
        self,
        work_root: Path,
        package_cache=None,
        environment: dict | None = None,
        *,
        run_as: str | None = None,
        forget_after: float = FORGET_AFTER_SECONDS,
        subreaper: bool = False,
    ):
        """`environment`: what scripts see instead of this process's environment (the server's built-in
        worker passes a clean one, so scripts never see its database or broker credentials).
        `run_as`: an account scripts run as when this process is root (the built-in worker's own).
        `forget_after`: seconds a finished script waits for CompleteScript before it is cleaned up.
        `subreaper`: make this process the reaper of scripts' orphans (only in a process of its own:
        it reaps every zombie child that is not a script it started)."""
        self.environment = dict(environment) if environment is not None else None
        self.work_root = Path(work_root)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.package_cache = package_cache
        self.run_as = run_as if run_as and os.geteuid() == 0 else None
        if self.run_as:
            os.chmod(self.work_root, 0o711)  # the account may enter its own folder, never list the others
        self.forget_after = float(forget_after)
        self.scripts: dict[str, Script] = {}
        self.collected: collections.OrderedDict[str, str] = collections.OrderedDict()  # ticket -> why it is gone
        self.lock = threading.Lock()
        self.spawn_lock = threading.Lock()  # a child is never reaped between its fork and its Popen being known
        self.mutexes: dict[str, threading.Lock] = {}
        self.subreaper = subreaper and become_subreaper()
        self.stopped = threading.Event()
        self.sweeper: threading.Thread | None = None
        self.remove_leftovers()

    # Requests -------------------------------------------------------------------------------------

    def start(self, request: dict) -> str:
        syntax = request.get("Syntax", "Bash")
        if syntax not in ("Bash", "Python", "PowerShell"):
            raise RunnerError(f"Unknown script syntax {syntax!r}: Bash, Python or PowerShell.")
        if not isinstance(request.get("ScriptBody"), str):
            raise RunnerError("ScriptBody must be text.")
        if syntax == "PowerShell" and not shutil.which("pwsh"):
            raise RunnerError("This worker has no PowerShell (pwsh) on its PATH.")
        if syntax == "Bash" and not shutil.which("bash"):
            raise RunnerError("This worker has no bash on its PATH.")
        variables = request.get("Variables") or []
        if not isinstance(variables, list) or not all(
            isinstance(v, dict) and isinstance(v.get("Name"), str) for v in variables
        ):
            raise RunnerError("Variables must be a list of {Name, Value, IsSensitive}.")
        ticket = request.get("Ticket")
        if ticket is None:
            ticket = uuid.uuid4().hex
        elif not isinstance(ticket, str) or not TICKET.match(ticket):
            raise RunnerError("Ticket must be 16 to 64 lowercase hexadecimal characters.")
        account = self._account()
        with self.lock:
            if ticket in self.scripts:
                return ticket  # a retry after a lost answer: the script started once, it is not started again
            if ticket in self.collected:
                raise RunnerError(f"Script {ticket} already ran on this agent and {self.collected[ticket]}.")
            work = self.work_root / ticket
            lock_file = claim(self.work_root, ticket)
            try:
                work.mkdir(mode=0o700)
            except OSError as error:
                release(self.work_root, ticket, lock_file)
                raise RunnerError(
                    f"Cannot make the work folder of script {ticket}: {error.strerror or error}."
                ) from None
            script = Script(ticket, request, work)
            script.lock_file = lock_file
            self.scripts[ticket] = script
            if self.sweeper is None:
                self.sweeper = threading.Thread(target=self._sweep, name="script-sweeper", daemon=True)
                self.sweeper.start()
        threading.Thread(target=self._run, args=(script, account), name=f"script-{ticket[:8]}", daemon=True).start()
        return ticket

    def status(self, ticket: str, after: int = -1, wait: float = 0) -> dict:
        script = self._get(ticket)
        wait = max(0.0, min(float(wait), 30.0))
        with script.condition:
            script.acknowledge(after)
            script.condition.wait_for(
                lambda: script.next_sequence > after + 1 or script.state == "Complete", timeout=wait
            )
            return script.snapshot(after)

    def cancel(self, ticket: str) -> dict:
        script = self._get(ticket)
        with script.condition:
            first, script.cancelled = not script.cancelled, True
        if first and script.state != "Complete":  # a repeated cancel says and kills nothing more
            script.add_line("stdout", "The script was cancelled.", "Warning")
            self._kill(script)
        with script.condition:
            return script.snapshot(script.next_sequence - 1)

    def complete(self, ticket: str) -> dict:
        script = self._get(ticket)
        if script.state != "Complete":
            self.cancel(ticket)
            with script.condition:
                script.condition.wait_for(
                    lambda: script.state == "Complete", timeout=KILL_GRACE_SECONDS + DRAIN_SECONDS + 5
                )
        artifacts = []
        for artifact in script.artifacts:
            content = read_artifact(Path(artifact["Path"]), self.run_as)
            if content is not None:
                artifacts.append(
                    {
                        "Name": artifact["Name"],
                        "Length": len(content),
                        "ContentBase64": base64.b64encode(content).decode(),
                    }
                )
        self._forget(script, "was completed")
        return {"Artifacts": artifacts}

    def cancel_all(self) -> None:
        """The agent is stopping: cancel every script, and clean up what will never be collected."""
        self.stopped.set()
        for script in list(self.scripts.values()):
            try:
                self.cancel(script.ticket)
            except NotFound:
                continue
        for script in list(self.scripts.values()):
            self._wait_complete(script, KILL_GRACE_SECONDS + 2)
            self._forget(script, "was cancelled when the agent stopped")

    @staticmethod
    def _wait_complete(script: Script, timeout: float) -> None:
        with script.condition:
            script.condition.wait_for(lambda: script.state == "Complete", timeout=timeout)

    def _get(self, ticket: str) -> Script:
        script = self.scripts.get(ticket) if isinstance(ticket, str) else None
        if script is None:
            why = self.collected.get(ticket) if isinstance(ticket, str) else None
            raise NotFound(f"No script with ticket {ticket!r} on this agent" + (f": it {why}." if why else "."))
        return script

    # Work folders ---------------------------------------------------------------------------------

    def _account(self) -> pwd.struct_passwd | None:
        if not self.run_as:
            return None
        try:
            return pwd.getpwnam(self.run_as)
        except KeyError:
            raise RunnerError(
                f"Scripts are to run as {self.run_as!r}, but there is no such account on this machine."
            ) from None

    def _forget(self, script: Script, why: str) -> None:
        with self.lock:
            if self.scripts.get(script.ticket) is not script:
                return
            del self.scripts[script.ticket]
            self.collected[script.ticket] = why
            while len(self.collected) > 10_000:
                self.collected.popitem(last=False)
        shutil.rmtree(script.work, ignore_errors=True)
        release(self.work_root, script.ticket, script.lock_file)
        script.lock_file = None

    def remove_leftovers(self) -> list[str]:
        """Remove work folders no live runner owns (their agent died before cleaning up)."""
        return remove_leftovers(self.work_root)

    def _sweep(self) -> None:
        """Finished scripts nobody collected within `forget_after` are cleaned up; orphans are reaped."""
        interval = max(0.1, min(5.0, self.forget_after / 4))
        while not self.stopped.wait(interval):
            now = time.monotonic()
            for script in list(self.scripts.values()):
                if script.finished_at is not None and now - script.finished_at > self.forget_after:
                    self._forget(script, f"was not collected within {self.forget_after:g} seconds and was cleaned up")
            if self.subreaper:
                self._reap()

    def _reap(self) -> None:
        """Wait for zombie children that are not scripts' own processes (Popen waits for those). The /proc scan
        (milliseconds) runs outside the spawn lock, which a starting script waits for; under it, a zombie that
        turned out to be a script just started is left to its Popen."""
        zombies = zombie_children(os.getpid())
        if not zombies:
            return
        with self.spawn_lock:
            ours = {
                s.process.pid
                for s in list(self.scripts.values())
                if s.process is not None and s.process.returncode is None
            }
            reap(zombies - ours)

    # Running --------------------------------------------------------------------------------------

    def _run(self, script: Script, account: pwd.struct_passwd | None) -> None:
        mutex_name = script.request.get("IsolationMutex")
        mutex = None
        if mutex_name:
            with self.lock:
                mutex = self.mutexes.setdefault(str(mutex_name), threading.Lock())
            if not mutex.acquire(blocking=False):
                script.add_line("stdout", f"Waiting for the script isolation mutex {mutex_name!r}…", "Wait")
                while not mutex.acquire(timeout=0.5):
                    if script.cancelled:
                        script.finish(None, "Cancelled while waiting for the isolation mutex.")
                        return
        try:
            if script.cancelled:
                script.finish(None, "Cancelled before it started.")
                return
            self._execute(script, account)
        except Exception as error:  # never leave a reader waiting on a script that died in the runner
            script.add_line("stderr", f"The agent could not run the script: {error}", "Fatal")
            script.finish(None, str(error))
        finally:
            for name in SECRET_FILES:  # values in clear never outlive the script
                try:
                    (script.work / name).unlink()
                except OSError:
                    pass
            if mutex is not None:
                mutex.release()

    def _execute(self, script: Script, account: pwd.struct_passwd | None) -> None:
        argv, bash_bootstrap = prepare(script, account, self.package_cache, self.environment)
        env = dict(
            os.environ if self.environment is None else self.environment,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(script.work),
            OCTOPUS_WORK_FOLDER=str(script.work),
        )
        env[MARKER] = script.ticket
        identity: dict = {}
        if account is not None:
            # Everything was written as root into a folder only root could enter; now it becomes the account's.
            for folder, directories, files in os.walk(script.work):
                for name in directories + files:
                    os.lchown(os.path.join(folder, name), account.pw_uid, account.pw_gid)
            os.chown(script.work, account.pw_uid, account.pw_gid)
            env.update(HOME=str(script.work), USER=account.pw_name, LOGNAME=account.pw_name, TMPDIR=str(script.work))
            identity = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        bootstrap = None
        if bash_bootstrap is not None:
            bootstrap, argv = open_bash_bootstrap(script.work, bash_bootstrap, account)
        try:
            with self.spawn_lock:
                script.process = subprocess.Popen(
                    argv,
                    cwd=script.work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=() if bootstrap is None else (bootstrap,),
                    **identity,
                )
        finally:
            if bootstrap is not None:
                os.close(bootstrap)
        with script.condition:
            script.state = "Running"
            script.condition.notify_all()
        if script.cancelled:  # cancelled while it was being started: cancel found no process to kill
            self._kill(script)
        timeout = script.request.get("TimeoutSeconds")
        timed_out = self._pump(script, timeout if isinstance(timeout, (int, float)) and timeout > 0 else None)
        code = script.process.wait()
        failure = f"Timed out after {timeout} seconds." if timed_out else None
        if script.cancelled:
            failure = "The script was cancelled."
        elif code != 0 and not script.failure_message:
            failure = failure or f"The script exited with code {code}."
        script.finish(code, failure)

    def _pump(self, script: Script, timeout: float | None) -> bool:
        """Read both pipes with one selector until they close (or DRAIN_SECONDS after the script
        exited, when background children hold them open). Returns whether the timeout struck."""
        process = script.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ, PipeBuffer("stdout"))
        selector.register(process.stderr, selectors.EVENT_READ, PipeBuffer("stderr"))
        deadline = time.monotonic() + timeout if timeout else None
        exited_at: float | None = None
        timed_out = False
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not selector.get_map() or now - exited_at > DRAIN_SECONDS):
                    break
                if deadline is not None and now > deadline and not timed_out:
                    timed_out = True
                    script.add_line(
                        "stderr", f"The script did not finish within {timeout} seconds and was stopped.", "Error"
                    )
                    threading.Thread(target=self._kill, args=(script,), daemon=True).start()
                if not script.has_room() and not script.cancelled and not timed_out:
                    with script.condition:  # the caller is behind: let the child wait on its full pipe
                        script.condition.wait_for(lambda: script.has_room() or script.cancelled, timeout=0.25)
                    if exited_at is not None:
                        exited_at = time.monotonic()
                    continue
                if not selector.get_map():
                    time.sleep(0.1)
                    continue
                for key, _ in selector.select(timeout=0.25):
                    chunk = os.read(key.fd, READ_CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        script.feed(key.data, b"\n" if key.data.buffer else b"")
                    else:
                        script.feed(key.data, chunk)
        finally:
            for key in list(selector.get_map().values()):
                script.feed(key.data, b"\n" if key.data.buffer else b"")
            selector.close()
            process.stdout.close()
            process.stderr.close()
        return timed_out

    def _signal(self, script: Script, sig: int) -> list[int]:
        """Signal the script's process group and every process carrying its marker; returns the latter."""
        if script.process is not None:
            try:
                os.killpg(script.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        marked = marked_processes(script.ticket)
        for pid in marked:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        return marked

    def _kill(self, script: Script) -> None:
        """SIGTERM to the group and every marked descendant (`setsid` ones too), SIGKILL to what is left."""
        process = script.process
        if process is None:
            return
        marked = self._signal(script, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while (process.poll() is None or marked) and time.monotonic() < deadline:
            time.sleep(0.05)
            marked = marked_processes(script.ticket)
        for _ in range(20):  # a script forking while we look: look again until nothing is left
            if not self._signal(script, signal.SIGKILL):
                break
            time.sleep(0.02)
        if self.subreaper:
            self._reap()
