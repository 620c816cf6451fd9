"""The invocation runner: one step's script on its chosen worker, from the packages it needs to its exit code,
output variables and artifacts. Before a script starts, an unreachable worker is routed around; once it has
started, it is never run twice."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from operator import methodcaller
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from deployments.models import Artifact
from deployments.services.artifacts import accepted_artifacts
from deployments.services.nodes import record_running_script
from deployments.services.octostache import SubstitutionError
from deployments.services.orchestrator.planner import Invocation
from deployments.services.orchestrator.variables import TaskVariables
from deployments.services.selection import SelectionError, WorkerSelector
from infrastructure.models import Worker
from infrastructure.services.liveness import mark_worker_unreachable
from infrastructure.transports import TransportError, WorkerUnreachable, new_ticket, transport_for
from infrastructure.transports.builtin import BuiltinTransport
from portal.redis import redis_client
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstore
from servertasks.services.tasklog import TaskLog
from tentacle_agent.protocol import is_finished

Status = ActivityNode.Status
Category = TaskLogLine.Category
CATEGORIES = frozenset(Category.values)  # Category.values builds a list on each call (hot path: every line)
FRESH_CHOICE_SECONDS = 1.0  # a worker chosen this recently is not read again before its script starts


@dataclass
class Outcome:
    """How the task is going: why it failed so far, and whether anything warned. Invocation threads add to it."""

    failed: list[str] = field(default_factory=list)
    warnings: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def fail(self, reason: str) -> None:
        with self.lock:
            self.failed.append(reason)


class Canceled(Exception):
    """The task was canceled or timed out: unwind, ending each node as Canceled."""


class InvocationRunner:
    """Runs the invocations of one task; one runner is shared by all of the task's invocation threads."""

    def __init__(
        self,
        task: ServerTask,
        *,
        variables: TaskVariables,
        log: TaskLog,
        outcome: Outcome,
        selector: WorkerSelector,
        cancel: threading.Event,
        deadline: float,
        mutex: bool,
    ):
        self.task = task
        self.arguments = task.arguments
        self.variables = variables
        self.log = log
        self.outcome = outcome
        self.selector = selector
        self.cancel = cancel  # set by the task's watcher: cancel requested, or the task's timeout
        self.deadline = deadline
        self.mutex = mutex  # OctopusBypassDeploymentMutex=False

    def invoke(self, invocation: Invocation) -> str:
        node, step, worker = invocation.node, invocation.step, invocation.choice.worker
        if node.status != Status.RUNNING:
            self.log.start(node)
        if self.marked_down(invocation) and not self.route_around(invocation, invocation.choice.worker.status_summary):
            return Status.FAILED
        transport = self.transport(invocation)
        lock, rerouted = None, False
        ticket, chosen = None, None  # ticket: the script started; chosen: the ticket we sent
        try:
            if self.mutex:
                lock = self.acquire_worker_mutex(invocation)
            packages = self.transfer_packages(transport, invocation)
            values = self.variables.for_action(invocation, self.outcome.failed)
            body, variables = self.variables.script_for(invocation, values)
            # The ticket is ours: a start retried after a lost answer is recognised, never run twice.
            chosen = new_ticket()
            ticket = transport.start_script(
                {
                    "Ticket": chosen,
                    "ScriptBody": body,
                    "Syntax": step["Syntax"],
                    "Packages": packages,
                    "Variables": variables,
                    "IsolationMutex": None,
                    # A backstop on the worker, should this server vanish.
                    "TimeoutSeconds": max(1, int(self.deadline - time.monotonic())) + 60,
                    "TaskId": self.task.octopus_id,
                }
            )
            record_running_script(self.task, worker, ticket)  # so it can be cancelled should this node die
            status = self.follow(transport, ticket, node)
        except SubstitutionError as error:
            self.log.write(str(error), Category.ERROR, node)
            self.log.finish(node, Status.FAILED)
            return Status.FAILED
        except WorkerUnreachable as error:
            if ticket is not None:  # the script started: never re-run it elsewhere
                self.log.write(
                    f"{invocation.choice.worker_name} failed while running the script: {error}", Category.ERROR, node
                )
                self.log.finish(node, Status.FAILED)
                return Status.FAILED
            rerouted = self.route_around(invocation, str(error))
            if not rerouted:
                return Status.FAILED
        except TransportError as error:
            self.note_failed_call(invocation, error, started=ticket is not None)
            self.log.write(f"{invocation.choice.worker_name} failed: {error}", Category.ERROR, node)
            if ticket is None and chosen is not None and not isinstance(error, WorkerUnreachable):
                self.complete_script_quietly(transport, chosen, node)  # the start may have reached the worker
            self.log.finish(node, Status.FAILED)
            return Status.FAILED
        except Canceled:
            self.log.finish(node, Status.CANCELED)
            return Status.CANCELED
        finally:
            self.release_quietly(lock)
        if rerouted:
            return self.invoke(invocation)
        return self.conclude(status, invocation)

    @staticmethod
    def release_quietly(lock) -> None:
        if lock is None:
            return
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - an expired lock is already free
            pass

    def marked_down(self, invocation: Invocation) -> bool:
        """Whether the chosen worker was found down since the task began (selection happened then). A choice
        made a moment ago is current (the first step's); should the worker have gone since, the transport
        finds it unreachable before the script starts, and the step is routed around all the same."""
        worker = invocation.choice.worker
        if worker is None or time.monotonic() - invocation.choice.chosen_at < FRESH_CHOICE_SECONDS:
            return False
        worker.refresh_from_db(fields=["health_status", "status_summary", "is_disabled"])
        return not worker.is_available()

    @staticmethod
    def note_failed_call(invocation: Invocation, error: TransportError, *, started: bool) -> None:
        """A failed call says something about the worker: before a script started, it is down (and
        re-checked in seconds); after, a check is due at once (the script's own failure is reported)."""
        worker = invocation.choice.worker
        if worker is None:
            return
        if started:
            Worker.objects.filter(pk=worker.pk).update(next_health_check=timezone.now())
        else:
            mark_worker_unreachable(worker=worker, reason=str(error))

    def route_around(self, invocation: Invocation, reason: str) -> bool:
        """Nothing started on the chosen worker: mark it down and re-plan the step onto another healthy
        worker of the pool, saying why. False (the step has failed) when none is left."""
        node, step, failed = invocation.node, invocation.step, invocation.choice
        if failed.worker is not None and failed.worker.is_available():
            mark_worker_unreachable(worker=failed.worker, reason=reason)
        packages = tuple((p["PackageId"], p["Version"]) for p in step["Packages"])
        try:
            if self.arguments.get("WorkerIds"):  # the Script Console named this worker: no other will do
                raise SelectionError(
                    f"{failed.worker_name} was named in the Script Console and could not be reached: {reason}"
                )
            invocation.choice = self.selector.reroute(failed, step["Name"], reason, packages)
        except SelectionError as error:
            self.log.write(
                f"{failed.worker_name} could not be reached before the script started: {reason}", Category.ERROR, node
            )
            self.log.write(str(error), Category.ERROR, node)
            self.log.finish(node, Status.FAILED)
            self.outcome.fail(str(error))
            return False
        self.log.write(
            f"{failed.worker_name} could not be reached before the script started ({reason}): the step moves to "
            f"{invocation.choice.worker_name}, chosen because {invocation.choice.rule}.",
            Category.WARNING,
            node,
        )
        behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
        node.name = f"{invocation.choice.worker_name}{behalf}"[: ActivityNode._meta.get_field("name").max_length]
        node.save(update_fields=["name"])
        return True

    def transport(self, invocation: Invocation):
        if invocation.choice.worker is None:
            return BuiltinTransport()
        # Each retry of a connection is one line in the step's log.
        return transport_for(
            invocation.choice.worker, on_retry=lambda message: self.log.write(message, Category.INFO, invocation.node)
        )

    def acquire_worker_mutex(self, invocation: Invocation):
        """OctopusBypassDeploymentMutex=False: scripts on one worker take turns, across tasks and server nodes."""
        worker = invocation.choice.worker
        key = f"reef:worker:{worker.pk if worker else 'builtin'}:mutex"
        lock = redis_client().lock(key, timeout=settings.REEF_TASK_TIMEOUT, blocking=False)
        if lock.acquire(blocking=False):
            return lock
        self.log.write(
            "Waiting for the script isolation mutex: another task is running a script on "
            f"{invocation.choice.worker_name}…",
            Category.WAIT,
            invocation.node,
        )
        while not lock.acquire(blocking=True, blocking_timeout=0.5):
            if self.cancel.is_set():
                raise Canceled
        self.log.write(
            f"Acquired the script isolation mutex on {invocation.choice.worker_name}.",
            Category.VERBOSE,
            invocation.node,
        )
        return lock

    def transfer_packages(self, transport, invocation: Invocation) -> list[dict]:
        """Upload each package unless the worker's cache has its SHA-256; the worker is locked while we look."""
        packages = invocation.step["Packages"]
        if not packages:
            return []
        worker = invocation.choice.worker
        with redis_client().lock(
            f"reef:worker:{worker.pk if worker else 'builtin'}:packages", timeout=600, blocking_timeout=600
        ):
            for package in packages:
                name = f"{package['PackageId']} {package['Version']}"
                if transport.has_package(package["Sha256"]):
                    self.log.write(
                        f"Package {name} is already in {invocation.choice.worker_name}'s cache.",
                        Category.VERBOSE,
                        invocation.node,
                    )
                    continue
                data = (Path(settings.VAR_DIR) / "packages" / package["Sha256"]).read_bytes()
                self.log.write(
                    f"Uploading package {name} ({len(data):,} bytes) to {invocation.choice.worker_name}.",
                    Category.INFO,
                    invocation.node,
                )
                transport.upload_package(package["Sha256"], package["FileName"], data)
        return [{"PackageId": p["PackageId"], "Version": p["Version"], "Sha256": p["Sha256"]} for p in packages]

    def follow(self, transport, ticket: str, node: ActivityNode) -> dict:
        """Pull lines until the script completes; its work folder is cleaned however this ends."""
        after, canceled, completed = -1, False, False
        try:
            while True:
                if self.cancel.is_set() and not canceled:
                    transport.cancel_script(ticket)
                    canceled = True
                # A failed GetStatus is retried by the transport with the same AfterSequence: nothing lost or doubled.
                status = transport.get_status(ticket, after, 1)
                after = self.write_status_lines(status.get("Logs") or [], node, after)
                self.log.flush()
                if is_finished(status):
                    status = dict(status, Artifacts=transport.complete_script(ticket)["Artifacts"])
                    completed = True
                    if canceled:
                        raise Canceled
                    return status
        finally:
            if not completed:
                self.complete_script_quietly(transport, ticket, node)

    def write_status_lines(self, lines: list[dict], node: ActivityNode, after: int) -> int:
        """A GetStatus's lines into the log, in order; answers the last sequence taken (hot path: every line)."""
        batch: list[tuple[str, str]] = []
        for line in lines:
            category = line.get("Category")
            if category == "Progress":
                self.log.write_many(batch, node)  # lines before the progress stay before it
                batch = []
                if self.progress(node, line):
                    continue
            batch.append((line.get("Text", ""), category if category in CATEGORIES else Category.INFO))
        self.log.write_many(batch, node)
        return max(after, max(map(int, map(methodcaller("get", "Sequence", after), lines)), default=after))

    def complete_script_quietly(self, transport, ticket: str, node: ActivityNode) -> None:
        """Best effort, one attempt: the step already failed; the worker's folder should still go."""
        transport.retry_count = 0
        try:
            transport.complete_script(ticket)
        except TransportError as error:
            self.log.write(f"Could not clean up the script's work folder: {error}", Category.VERBOSE, node)

    def conclude(self, status: dict, invocation: Invocation) -> str:
        node, step = invocation.node, invocation.step
        for variable in status.get("OutputVariables") or []:
            name, value = variable.get("Name", ""), str(variable.get("Value", ""))
            self.variables.set_output(
                step["Name"],
                invocation.target.name if invocation.target is not None else None,
                name,
                value,
                sensitive=bool(variable.get("IsSensitive")),
            )
            self.log.write(
                f"Output variable Octopus.Action[{step['Name']}].Output.{name} was set.", Category.VERBOSE, node
            )
        for artifact in accepted_artifacts(
            status.get("Artifacts") or [], warn=lambda text: self.log.write(text, Category.WARNING, node)
        ):
            content = base64.b64decode(artifact.get("ContentBase64", ""))
            name = self.log.mask(str(artifact.get("Name") or "artifact"))[
                :200
            ]  # shown on the task page, like a log line
            Artifact.objects.create(task=self.task, name=name, size=len(content), content=content)
            self.log.write(f"Collected the artifact {name} ({len(content):,} bytes).", Category.INFO, node)
        code = status.get("ExitCode")
        if code != 0 or (status.get("FailureMessage") and code is None):
            self.log.write(status.get("FailureMessage") or f"The script exited with code {code}.", Category.ERROR, node)
            self.log.finish(node, Status.FAILED)
            return Status.FAILED
        warned = logstore.node_has_warnings(node)
        self.log.finish(node, Status.SUCCESS_WITH_WARNING if warned else Status.SUCCESS)
        return Status.SUCCESS_WITH_WARNING if warned else Status.SUCCESS

    def progress(self, node: ActivityNode, line: dict) -> bool:
        """An `update_progress` from the script: the node's progress moves (live on the page and in /details)."""
        try:
            percentage = max(0, min(100, int(line.get("Percentage"))))
        except (TypeError, ValueError):
            return False
        node.progress = percentage
        node.save(update_fields=["progress"])
        if line.get("Text"):
            self.log.write(f"{line['Text']} ({percentage}%)", Category.VERBOSE, node)
        self.log._changed(node)
        step_node = node.parent  # the step's progress: the mean of its invocations'
        if step_node is not None and step_node.parent_id is not None:
            shares = [p or 0 for p in ActivityNode.objects.filter(parent=step_node).values_list("progress", flat=True)]
            step_node.progress = sum(shares) // max(1, len(shares))
            step_node.save(update_fields=["progress"])
            self.log._changed(step_node)
        return True
