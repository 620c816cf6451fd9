"""The orchestrator: runs one server task (a deployment, a runbook run, a Script Console script).

Workers are chosen when the task starts (selection.py). Steps run in order, those marked "start with
previous" together; each step's invocations (one, or one per target) run up to its MaxParallelism at
once. Invocations are threads blocked in long-polls on the transports, so one server node runs its
whole task cap without an OS process per step. A watcher thread keeps the task's heartbeat in Redis,
and turns a cancel request or the task's timeout into cancelled scripts.
"""

from __future__ import annotations

import base64
import logging
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from deployments.models import Artifact, DeploymentTarget, Environment, Interruption, Release, Step, Variable
from deployments.services.artifacts import accepted_artifacts
from deployments.services.nodes import record_running_script
from deployments.services.octostache import SubstitutionError, VariableDictionary
from deployments.services.selection import Choice, SelectionError, WorkerSelector, release_leases, resolve_pool
from deployments.services.tasks import finish_task_and_forget_scripts
from infrastructure.models import Worker
from infrastructure.transports import TransportError, WorkerUnreachable, new_ticket, transport_for
from portal.encryption import decrypt
from portal.redis import redis_client
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstore
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import HEARTBEAT_SECONDS, claim_server_task, heartbeat
from tentacle_agent.protocol import is_finished

logger = logging.getLogger(__name__)

State = ServerTask.State
Status = ActivityNode.Status
Category = TaskLogLine.Category
CATEGORIES = frozenset(Category.values)  # Category.values builds a list on each call (hot path: every line)

FALSE_WORDS = {"", "false", "0", "no", "off"}


def substitute(text: str, values: dict[str, str], sensitive: set[str] | frozenset[str] = frozenset()) -> str:
    """Octopus's substitution (deployments/services/octostache.py): nested values, filters, #{if}, #{each}…;
    unknown names stay as written; a reference cycle raises SubstitutionError."""
    return VariableDictionary(values, sensitive=sensitive).evaluate(text or "")


def resolve_variables(snapshot: list[dict], environment: Environment | None) -> tuple[dict[str, str], set[str]]:
    """Values for one environment (a value scoped to it beats an unscoped one) and the sensitive values."""
    chosen: dict[str, tuple[int, dict]] = {}
    for variable in snapshot:
        scopes = variable.get("EnvironmentIds") or []
        if scopes and (environment is None or environment.pk not in scopes):
            continue
        rank = 1 if scopes else 0
        if variable["Name"] not in chosen or rank >= chosen[variable["Name"]][0]:
            chosen[variable["Name"]] = (rank, variable)
    values, sensitive = {}, set()
    for name, (_, variable) in chosen.items():
        if variable["Type"] == Variable.Type.SENSITIVE:
            values[name] = decrypt(variable["Value"])
            sensitive.add(values[name])
        elif variable["Type"] == Variable.Type.WORKER_POOL:
            values[name] = variable.get("WorkerPoolId") or ""
        else:
            values[name] = variable["Value"]
    return values, sensitive


def with_parameters(syntax: str, body: str, parameters: str) -> str:
    """Script parameters become the script's arguments."""
    if not parameters.strip():
        return body
    if syntax == Step.Syntax.PYTHON:
        return f"import sys as _s, shlex as _x\n_s.argv[1:] = _x.split({parameters!r})\ndel _s, _x\n{body}"
    if syntax == Step.Syntax.POWERSHELL:
        return f"& {{\n{body}\n}} {parameters}"
    return f"set -- {parameters}\n{body}"


def script_from_package(step: dict) -> str:
    """Octopus.Action.Script.ScriptSource = Package: run a file of the step's first package (the worker
    extracts each package into a folder named for its id, beside the script)."""
    packages = step.get("Packages") or []
    if not packages:
        raise SubstitutionError(f"Step {step['Name']!r} runs a script from a package but references no package.")
    path = f"{packages[0]['PackageId']}/{step.get('ScriptFileName') or ''}".replace("\\", "/")
    if ".." in path.split("/") or not step.get("ScriptFileName"):
        raise SubstitutionError(f"Step {step['Name']!r}: name the script file inside package {packages[0]['PackageId']}.")
    if step["Syntax"] == Step.Syntax.PYTHON:
        return f"import runpy as _runpy\n_runpy.run_path({path!r}, run_name='__main__')\n"
    if step["Syntax"] == Step.Syntax.POWERSHELL:
        return f"& (Join-Path $PSScriptRoot {path!r}) @args\n"
    return f". ./{shlex.quote(path)} \"$@\"\n"


@dataclass
class Invocation:
    step: dict
    choice: Choice
    target: DeploymentTarget | None = None
    node: ActivityNode | None = None


@dataclass
class Outcome:
    failed: list[str] = field(default_factory=list)
    warnings: bool = False


class Canceled(Exception):
    """The task was canceled or timed out: unwind, ending each node as Canceled."""


class Interrupted(Exception):
    """A manual intervention: the task went back to the queue to wait for an answer."""


class Orchestration:
    def __init__(self, task: ServerTask):
        self.task = task
        self.space = task.space
        self.arguments = task.arguments
        self.resume = dict(self.arguments.get("Resume") or {})
        self.environment = Environment.objects.filter(pk=Environment.pk_from_octopus_id(self.arguments.get("EnvironmentId")) or 0).first()
        self.release = None
        if task.name == "Deploy":
            self.release = Release.objects.select_related("project").get(pk=Release.pk_from_octopus_id(self.arguments["ReleaseId"]))
            self.steps, snapshot = self.release.process_snapshot, self.release.variables_snapshot
        else:
            self.steps, snapshot = self.arguments.get("Process", []), self.arguments.get("Variables", [])
        self.values, sensitive = resolve_variables(snapshot, self.environment)
        self.values.update(self.system_variables())
        self.values.update(self.resume.get("OutputVariables") or {})
        sensitive |= set(self.resume.get("SensitiveOutputs") or [])
        self.sensitive = sensitive
        self.log = TaskLog(task, sensitive_values=sorted(sensitive))
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.cancel_reason = State.CANCELED
        self.deadline = time.monotonic() + settings.REEF_TASK_TIMEOUT
        self.mutex = self.values.get("OctopusBypassDeploymentMutex", "").strip().lower() == "false"
        self.outcome = Outcome(failed=list(self.resume.get("Failed") or []))
        self.guided_failure = bool(self.arguments.get("UseGuidedFailure")) or bool(self.environment and self.environment.use_guided_failure)

    # Variables -----------------------------------------------------------------------------------

    def system_variables(self) -> dict[str, str]:
        task = self.task
        values = {"Octopus.Task.Id": task.octopus_id, "Octopus.Space.Id": self.space.octopus_id, "Octopus.Space.Name": self.space.name,
                  "Octopus.Web.ServerUri": getattr(settings, "REEF_PUBLIC_URL", "")}
        if task.project_id:
            values.update({"Octopus.Project.Id": task.project.octopus_id, "Octopus.Project.Name": task.project.name})
        if self.environment:
            values.update({"Octopus.Environment.Id": self.environment.octopus_id, "Octopus.Environment.Name": self.environment.name})
        if self.release:
            deployment = task.deployment
            values.update({"Octopus.Release.Id": self.release.octopus_id, "Octopus.Release.Number": self.release.version,
                           "Octopus.Release.Notes": self.release.release_notes, "Octopus.Deployment.Id": deployment.octopus_id,
                           "Octopus.Deployment.Name": f"Deploy to {self.environment.name}",
                           "Octopus.Deployment.CreatedBy.Username": deployment.created_by.username if deployment.created_by else ""})
        if task.name == "RunbookRun":
            values.update({"Octopus.Runbook.Id": self.arguments["RunbookId"], "Octopus.RunbookRun.Id": task.runbook_run.octopus_id,
                           "Octopus.Runbook.Name": task.runbook_run.runbook.name})
        return values

    def action_values(self, invocation: Invocation) -> dict[str, str]:
        step, choice, target = invocation.step, invocation.choice, invocation.target
        values = dict(self.values)
        values.update({"Octopus.Step.Name": step["Name"], "Octopus.Action.Name": step["Name"],
                       "Octopus.Action.MaxParallelism": str(step["MaxParallelism"]),
                       "Octopus.WorkerPool.Id": choice.pool.octopus_id, "Octopus.WorkerPool.Name": choice.pool.name,
                       "Octopus.Worker.Name": choice.worker_name,
                       "Octopus.Deployment.Error": "; ".join(self.outcome.failed)})
        if target is not None:
            values.update({"Octopus.Machine.Id": target.octopus_id, "Octopus.Machine.Name": target.name,
                           "Octopus.Machine.Roles": ",".join(target.roles)})
        return values

    # Running -------------------------------------------------------------------------------------

    def run(self) -> None:
        watcher = threading.Thread(target=self.watch, name=f"watch-{self.task.pk}", daemon=True)
        watcher.start()
        try:
            self.root = self.log.node(self.task.description) if "RootNodeId" not in self.resume else \
                ActivityNode.objects.get(pk=self.resume["RootNodeId"])
            self.log.start(self.root)
            if self.resume:
                self.resumed()
            self.execute()
        except (Canceled, Interrupted):
            pass
        except Exception as error:  # a bug here must still end the task, with the reason
            logger.exception("task %s failed in the orchestrator", self.task.pk)
            self.outcome.failed.append(f"The server failed while running the task: {type(error).__name__}: {error}")
            self.log.write(self.outcome.failed[-1], Category.FATAL, getattr(self, "root", None))
        finally:
            self.done.set()
            watcher.join(5)
            self.end()

    def execute(self) -> None:
        start = int(self.resume.get("NextStep", 0))
        steps = [(i, s) for i, s in enumerate(self.steps) if i >= start]
        earlier = self.resume.get("StepNodeIds") or {}  # a resumed task keeps its tree
        self.step_nodes = nodes = {i: ActivityNode.objects.get(pk=earlier[str(i)]) if str(i) in earlier else
                                   self.log.node(f"Step {i + 1}: {s['Name']}", self.root) for i, s in steps}
        try:
            plans = self.plan([(i, s) for i, s in steps if s["ActionType"] == Step.ActionType.SCRIPT and not s["IsDisabled"]], nodes)
        except SelectionError as error:
            self.outcome.failed.append(str(error))
            self.log.write(str(error), Category.ERROR, self.root)
            for node in nodes.values():
                self.log.finish(node, Status.SKIPPED)
            return
        for group in self.groups(steps):
            if self.cancel.is_set():
                raise Canceled
            first_index, first = group[0]
            if first["ActionType"] == Step.ActionType.MANUAL and not first["IsDisabled"] and self.should_run(first):
                self.interrupt(first_index, first, nodes[first_index])
                raise Interrupted
            if len(group) == 1:
                self.run_step(group[0][1], nodes[group[0][0]], plans.get(group[0][0], []))
            else:
                self.in_parallel_group = True  # guided failure pauses a task between steps, not inside a parallel group
                with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix=f"task-{self.task.pk}-step") as pool:
                    for _ in pool.map(lambda item: self.threaded(self.run_step, item[1], nodes[item[0]], plans.get(item[0], [])), group):
                        pass
                self.in_parallel_group = False

    @staticmethod
    def groups(steps: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
        groups: list[list[tuple[int, dict]]] = []
        for item in steps:
            manual = item[1]["ActionType"] == Step.ActionType.MANUAL
            if groups and item[1]["StartWithPrevious"] and not manual and groups[-1][0][1]["ActionType"] != Step.ActionType.MANUAL:
                groups[-1].append(item)
            else:
                groups.append([item])
        return groups

    def plan(self, steps: list[tuple[int, dict]], nodes: dict[int, ActivityNode]) -> dict[int, list[Invocation]]:
        """Workers for every step, chosen now, at the start of the task."""
        selector = self.selector = WorkerSelector(self.task)
        plans: dict[int, list[Invocation]] = {}
        wanted = self.arguments.get("WorkerIds") or []
        chosen_workers = list(Worker.objects.filter(space=self.space, pk__in=[Worker.pk_from_octopus_id(i) for i in wanted]))
        if len(chosen_workers) != len(wanted):
            gone = sorted(set(wanted) - {w.octopus_id for w in chosen_workers})
            raise SelectionError(f"The Script Console named workers that no longer exist: {', '.join(gone)}.")
        for index, step in steps:
            if chosen_workers:
                how = "the Script Console names its workers"
                plans[index] = [Invocation(step, selector.lease(w, w.worker_pools.order_by("sort_order").first(), step["Name"],
                                                                "it was chosen in the Script Console")) for w in chosen_workers]
            else:
                pool, how = resolve_pool(step, space=self.space, environment=self.environment, variables=self.values)
                packages = tuple((p["PackageId"], p["Version"]) for p in step["Packages"])
                targets = self.targets_for(step) if step["Location"] == Step.Location.ON_BEHALF else [None]
                plans[index] = [Invocation(step, selector.choose(pool, step["Name"], packages,
                                                                 with_previous=bool(step.get("StartWithPrevious"))), target)
                                for target in targets]
            for invocation in plans[index]:
                behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
                self.log.write(f"Step {index + 1} {step['Name']!r}{behalf}: {invocation.choice.worker_name} was chosen "
                               f"because {invocation.choice.rule} ({how}).", Category.INFO, nodes[index])
        return plans

    def targets_for(self, step: dict) -> list[DeploymentTarget]:
        roles = set(step["TargetRoles"])
        if self.environment is None:
            return []
        targets = DeploymentTarget.objects.filter(space=self.space, environments=self.environment, is_disabled=False)
        return [t for t in targets if roles & set(t.roles)]

    def should_run(self, step: dict) -> bool:
        condition = step["Condition"]
        if condition == Step.Condition.ALWAYS:
            return True
        if condition == Step.Condition.VARIABLE:
            values = dict(self.values, **{"Octopus.Deployment.Error": "; ".join(self.outcome.failed)})
            try:
                return substitute(step["ConditionVariable"], values, self.sensitive).strip().lower() not in FALSE_WORDS
            except SubstitutionError as error:
                self.log.write(f"Step {step['Name']!r}: its run condition cannot be evaluated: {error}", Category.ERROR, self.root)
                return False
        return not self.outcome.failed

    def run_step(self, step: dict, node: ActivityNode, invocations: list[Invocation]) -> None:
        if step["IsDisabled"]:
            self.log.write("This step is disabled.", Category.VERBOSE, node)
            return self.log.finish(node, Status.SKIPPED)
        if not self.should_run(step):
            self.log.write(f"Skipped: its run condition ({step['Condition']}) is not met.", Category.INFO, node)
            return self.log.finish(node, Status.SKIPPED)
        if not invocations:
            self.log.write(f"Skipped: no enabled deployment target in {self.environment.name if self.environment else 'this task'} "
                           f"has any of the roles {', '.join(step['TargetRoles'])}.", Category.WARNING, node)
            self.outcome.warnings = True
            return self.log.finish(node, Status.SKIPPED)
        self.log.start(node)
        for invocation in invocations:
            behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
            invocation.node = self.log.node(f"{invocation.choice.worker_name}{behalf}", node)
        parallelism = max(1, min(int(step["MaxParallelism"]), len(invocations)))
        if parallelism == 1:
            results = [self.invoke(i) for i in invocations]
        else:
            with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix=f"task-{self.task.pk}-action") as pool:
                results = list(pool.map(lambda i: self.threaded(self.invoke, i), invocations))
        if self.cancel.is_set():
            self.log.finish(node, Status.CANCELED)
            raise Canceled
        if Status.FAILED in results:
            if self.guided_failure and not getattr(self, "in_parallel_group", False):
                self.ask_for_guidance(step, node)
            with self.lock:
                self.outcome.failed.append(f"Step {step['Name']!r} failed.")
            return self.log.finish(node, Status.FAILED)
        warned = Status.SUCCESS_WITH_WARNING in results
        self.outcome.warnings |= warned
        self.log.finish(node, Status.SUCCESS_WITH_WARNING if warned else Status.SUCCESS)

    @staticmethod
    def threaded(function, *args):
        """Runs in a pool thread: Django gives each thread its own connection, which must be closed."""
        try:
            return function(*args)
        finally:
            connection.close()

    def invoke(self, invocation: Invocation) -> str:
        node, step, worker = invocation.node, invocation.step, invocation.choice.worker
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
            values = self.action_values(invocation)
            body, variables = self.script_for(invocation, values)
            # The ticket is ours: a start retried after a lost answer is recognised, never run twice.
            chosen = new_ticket()
            ticket = transport.start_script({"Ticket": chosen, "ScriptBody": body, "Syntax": step["Syntax"],
                                             "Packages": packages, "Variables": variables, "IsolationMutex": None,
                                             # A backstop on the worker, should this server vanish.
                                             "TimeoutSeconds": max(1, int(self.deadline - time.monotonic())) + 60,
                                             "TaskId": self.task.octopus_id})
            record_running_script(self.task, worker, ticket)  # so it can be cancelled should this node die
            status = self.follow(transport, ticket, node)
        except SubstitutionError as error:
            self.log.write(str(error), Category.ERROR, node)
            self.log.finish(node, Status.FAILED)
            return Status.FAILED
        except WorkerUnreachable as error:
            if ticket is not None:  # the script started: never re-run it elsewhere
                self.log.write(f"{invocation.choice.worker_name} failed while running the script: {error}", Category.ERROR, node)
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
            if lock is not None:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001 - an expired lock is already free
                    pass
        if rerouted:
            return self.invoke(invocation)
        return self.conclude(status, invocation)

    def script_for(self, invocation: Invocation, values: dict[str, str]) -> tuple[str, list[dict]]:
        """The script and the variables the worker gets, substituted in the environment's scope (nested values
        evaluated). Values derived from sensitive ones (`#{Secret | ToBase64}`) are masked like them."""
        step = invocation.step
        dictionary = VariableDictionary(values, sensitive=self.sensitive)
        script = step["ScriptBody"]
        if step.get("ScriptSource") == "Package":
            script = script_from_package(step)
        body = with_parameters(step["Syntax"], dictionary.evaluate(script), dictionary.evaluate(step["ScriptParameters"]))
        resolved, errors = dictionary.resolved()
        for error in errors:
            self.log.write(f"Variable substitution: {error}", Category.WARNING, invocation.node)
        derived = dictionary.derived_sensitive - self.sensitive
        if derived:
            with self.lock:
                self.sensitive |= derived
            self.log.add_sensitive(sorted(derived))
        sensitive = self.sensitive
        variables = [{"Name": name, "Value": value, "IsSensitive": value in sensitive or values.get(name) in sensitive}
                     for name, value in resolved.items()]
        return body, variables

    def marked_down(self, invocation: Invocation) -> bool:
        """Whether the chosen worker was found down since the task began (selection happened then)."""
        worker = invocation.choice.worker
        if worker is None:
            return False
        worker.refresh_from_db(fields=["health_status", "status_summary", "is_disabled"])
        return not worker.is_available()

    @staticmethod
    def note_failed_call(invocation: Invocation, error: TransportError, *, started: bool) -> None:
        """A failed call says something about the worker: before a script started, it is down (and
        re-checked in seconds); after, a check is due at once (the script's own failure is reported)."""
        from infrastructure.services.liveness import mark_worker_unreachable

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
        from infrastructure.services.liveness import mark_worker_unreachable

        node, step, failed = invocation.node, invocation.step, invocation.choice
        if failed.worker is not None and failed.worker.is_available():
            mark_worker_unreachable(worker=failed.worker, reason=reason)
        packages = tuple((p["PackageId"], p["Version"]) for p in step["Packages"])
        try:
            if self.arguments.get("WorkerIds"):  # the Script Console named this worker: no other will do
                raise SelectionError(f"{failed.worker_name} was named in the Script Console and could not be reached: {reason}")
            invocation.choice = self.selector.reroute(failed, step["Name"], reason, packages)
        except SelectionError as error:
            self.log.write(f"{failed.worker_name} could not be reached before the script started: {reason}", Category.ERROR, node)
            self.log.write(str(error), Category.ERROR, node)
            self.log.finish(node, Status.FAILED)
            with self.lock:
                self.outcome.failed.append(str(error))
            return False
        self.log.write(f"{failed.worker_name} could not be reached before the script started ({reason}): the step moves to "
                       f"{invocation.choice.worker_name}, chosen because {invocation.choice.rule}.", Category.WARNING, node)
        behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
        node.name = f"{invocation.choice.worker_name}{behalf}"[:ActivityNode._meta.get_field("name").max_length]
        node.save(update_fields=["name"])
        return True

    def transport(self, invocation: Invocation):
        if invocation.choice.worker is None:
            from infrastructure.transports.builtin import BuiltinTransport

            return BuiltinTransport()
        # Each retry of a connection is one line in the step's log.
        return transport_for(invocation.choice.worker, on_retry=lambda message: self.log.write(message, Category.INFO, invocation.node))

    def acquire_worker_mutex(self, invocation: Invocation):
        """OctopusBypassDeploymentMutex=False: scripts on one worker take turns, across tasks and server nodes."""
        worker = invocation.choice.worker
        key = f"reef:worker:{worker.pk if worker else 'builtin'}:mutex"
        lock = redis_client().lock(key, timeout=settings.REEF_TASK_TIMEOUT, blocking=False)
        if lock.acquire(blocking=False):
            return lock
        self.log.write(f"Waiting for the script isolation mutex: another task is running a script on {invocation.choice.worker_name}…",
                       Category.WAIT, invocation.node)
        while not lock.acquire(blocking=True, blocking_timeout=0.5):
            if self.cancel.is_set():
                raise Canceled
        self.log.write(f"Acquired the script isolation mutex on {invocation.choice.worker_name}.", Category.VERBOSE, invocation.node)
        return lock

    def transfer_packages(self, transport, invocation: Invocation) -> list[dict]:
        """Upload each package unless the worker's cache has its SHA-256; the worker is locked while we look."""
        packages = invocation.step["Packages"]
        if not packages:
            return []
        worker = invocation.choice.worker
        with redis_client().lock(f"reef:worker:{worker.pk if worker else 'builtin'}:packages", timeout=600, blocking_timeout=600):
            for package in packages:
                name = f"{package['PackageId']} {package['Version']}"
                if transport.has_package(package["Sha256"]):
                    self.log.write(f"Package {name} is already in {invocation.choice.worker_name}'s cache.", Category.VERBOSE, invocation.node)
                    continue
                data = (Path(settings.VAR_DIR) / "packages" / package["Sha256"]).read_bytes()
                self.log.write(f"Uploading package {name} ({len(data):,} bytes) to {invocation.choice.worker_name}.", Category.INFO, invocation.node)
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
                for line in status.get("Logs") or []:
                    if line.get("Category") == "Progress" and self.progress(node, line):
                        after = max(after, int(line.get("Sequence", after)))
                        continue
                    category = line.get("Category") if line.get("Category") in CATEGORIES else Category.INFO
                    self.log.write(line.get("Text", ""), category, node)
                    after = max(after, int(line.get("Sequence", after)))
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
            with self.lock:
                self.values[f"Octopus.Action[{step['Name']}].Output.{name}"] = value
                if invocation.target is not None:
                    self.values[f"Octopus.Action[{step['Name']}].Output[{invocation.target.name}].{name}"] = value
                if variable.get("IsSensitive"):
                    self.sensitive.add(value)
                    self.log.add_sensitive([value])
            self.log.write(f"Output variable Octopus.Action[{step['Name']}].Output.{name} was set.", Category.VERBOSE, node)
        for artifact in accepted_artifacts(status.get("Artifacts") or [], warn=lambda text: self.log.write(text, Category.WARNING, node)):
            content = base64.b64decode(artifact.get("ContentBase64", ""))
            name = self.log.mask(str(artifact.get("Name") or "artifact"))[:200]  # shown on the task page, like a log line
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

    # Pausing, watching, ending --------------------------------------------------------------------

    def interrupt(self, index: int, step: dict, node: ActivityNode) -> None:
        """A manual intervention: free the workers and wait for an answer (selection happens again on resume)."""
        self.log.start(node)
        self.log.write(f"Manual intervention required: {step['Instructions'] or step['Name']}", Category.WAIT, node)
        self.pause(index, step, node, Interruption.Type.MANUAL, f"Manual intervention: {step['Name']}", step["Instructions"] or step["Name"])

    def ask_for_guidance(self, step: dict, node: ActivityNode) -> None:
        """Guided failure: a failed step pauses the task until someone chooses Retry, Ignore or Fail."""
        index = next(i for i, n in self.step_nodes.items() if n.pk == node.pk)
        self.log.write(f"Step {step['Name']!r} failed. Guided failure: the deployment waits for someone to choose "
                       "Retry, Ignore or Fail.", Category.WAIT, node)
        self.pause(index, step, node, Interruption.Type.GUIDED_FAILURE, f"Guidance required: {step['Name']} failed",
                   f"Step {step['Name']!r} failed: retry it, ignore the failure, or fail the deployment.")
        raise Interrupted

    def pause(self, index: int, step: dict, node: ActivityNode, kind: str, title: str, instructions: str) -> None:
        """Wait for an answer: the task stays Executing (HasPendingInterruptions) with no server node; the
        answer re-queues it (deployments/services/interruptions.py) and it resumes here, keeping its tree."""
        outputs = {k: v for k, v in self.values.items() if k.startswith("Octopus.Action[")}
        resume = {"NextStep": index, "Kind": kind, "RootNodeId": self.root.pk, "OutputVariables": outputs,
                  "StepNodeIds": {str(i): node.pk for i, node in self.step_nodes.items()},
                  "SensitiveOutputs": sorted(v for v in outputs.values() if v in self.sensitive), "Failed": self.outcome.failed,
                  "Warnings": self.outcome.warnings}
        self.log.flush()
        release_leases(self.task)
        with transaction.atomic():
            waiting = ServerTask.objects.filter(pk=self.task.pk, state=State.EXECUTING).update(
                pending_interruption=instructions, arguments={**self.arguments, "Resume": resume}, server_node="")
            if waiting:
                Interruption.objects.create(space=self.space, task=self.task, type=kind, title=title[:500], instructions=instructions,
                                            step_index=index, node=node, responsible_team_ids=list(step.get("ResponsibleTeamIds") or []))
        if not waiting:  # canceled meanwhile: end as Canceled, not waiting for an answer that cannot come
            self.cancel.set()
            return
        self.task.refresh_from_db()
        from servertasks.services import logstream

        logstream.publish_state(self.task)
        self.interrupted = True

    def resumed(self) -> None:
        """The answer to the interruption this task waited at: the log already holds who answered and why."""
        resume = self.resume
        index = int(resume.get("NextStep", 0))
        node = ActivityNode.objects.filter(pk=(resume.get("StepNodeIds") or {}).get(str(index)) or 0).first()
        result = resume.get("Result") or ("Proceed" if resume.get("Proceed") else "Abort")
        self.outcome.warnings = bool(resume.get("Warnings"))
        step = self.steps[index] if index < len(self.steps) else {"Name": "?"}
        if node is None:
            return
        if result == "Proceed":
            self.log.finish(node, Status.SUCCESS)
            index += 1
        elif result == "Abort":
            self.outcome.failed.append("The manual intervention was aborted.")
            self.log.finish(node, Status.FAILED)
            index += 1
        elif result == "Ignore":
            self.outcome.warnings = True
            self.log.finish(node, Status.SUCCESS_WITH_WARNING)
            index += 1
        elif result == "Fail":
            self.outcome.failed.append(f"Step {step['Name']!r} failed.")
            self.log.finish(node, Status.FAILED)
            index += 1
        # Retry: the same step again, on workers selected again.
        self.resume["NextStep"] = index

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

    def watch(self) -> None:
        beat = 0.0
        while not self.done.wait(0.5):
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                heartbeat(self.task.pk)
                beat = time.monotonic()
            if self.cancel.is_set():
                continue
            if time.monotonic() > self.deadline:
                self.cancel_reason = State.TIMED_OUT
                self.cancel.set()
            elif ServerTask.objects.filter(pk=self.task.pk, cancel_requested=True).exists():
                self.cancel.set()
        heartbeat(self.task.pk, alive=False)
        connection.close()

    def end(self) -> None:
        self.log.flush()
        release_leases(self.task)
        if getattr(self, "interrupted", False):
            return
        if self.cancel.is_set():
            state = self.cancel_reason
            message = (f"The task did not finish within {settings.REEF_TASK_TIMEOUT} seconds and was stopped."
                       if state == State.TIMED_OUT else "The task was canceled.")
            self.log.write(message, Category.ERROR if state == State.TIMED_OUT else Category.WARNING, self.root)
            self.log.finish(self.root, Status.CANCELED if state == State.CANCELED else Status.FAILED)
            finish_task_and_forget_scripts(task=self.task, state=state, error_message=message, has_warnings=self.outcome.warnings)
        elif self.outcome.failed:
            self.log.finish(self.root, Status.FAILED)
            finish_task_and_forget_scripts(task=self.task, state=State.FAILED, error_message=" ".join(self.outcome.failed),
                                           has_warnings=self.outcome.warnings)
        else:
            self.log.finish(self.root, Status.SUCCESS_WITH_WARNING if self.outcome.warnings else Status.SUCCESS)
            finish_task_and_forget_scripts(task=self.task, state=State.SUCCESS, has_warnings=self.outcome.warnings)


def run_server_task(task_id: int) -> None:
    """Celery's entry: claim the task (once) and run it to an end, or to a manual intervention."""
    task = claim_server_task(task_id)
    if task is None:
        return  # already claimed (a redelivered message), canceled, or waiting for an intervention
    try:
        Orchestration(task).run()
    finally:
        close_old_connections()
