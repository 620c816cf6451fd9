"""One run of a server task: its steps in order, those marked "start with previous" together, each step's
invocations (one, or one per target) up to its MaxParallelism at once; a manual intervention or guided failure
pauses it. A watcher thread keeps the task's heartbeat and turns a cancel request or the timeout into cancelled
scripts. The planner chooses workers, the invocation runner runs scripts, TaskVariables holds the values."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from deployments.models import Deployment, Environment, Interruption, Step
from deployments.services.octostache import SubstitutionError
from deployments.services.orchestrator.invocations import Canceled, InvocationRunner, Outcome
from deployments.services.orchestrator.planner import Invocation, Planner, step_groups
from deployments.services.orchestrator.variables import TaskVariables, resolve_variables, system_variables
from deployments.services.selection import SelectionError, release_leases
from deployments.services.tasks import finish_task_and_forget_scripts
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstream
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import HEARTBEAT_SECONDS, claim_server_task, heartbeat

logger = logging.getLogger(__name__)

State = ServerTask.State
Status = ActivityNode.Status
Category = TaskLogLine.Category


class Interrupted(Exception):
    """A manual intervention: the task went back to the queue to wait for an answer."""


def in_thread(function, *args):
    """Runs in a pool thread: Django gives each thread its own connection, which must be closed."""
    try:
        return function(*args)
    finally:
        connection.close()


class Orchestration:
    def __init__(self, task: ServerTask):
        self.task = task
        self.space = task.space
        self.arguments = task.arguments
        self.resume = dict(self.arguments.get("Resume") or {})
        deployment: Deployment | None = None
        if task.name == "Deploy":  # one read: the release, its environment and who deployed it
            deployment = Deployment.objects.select_related("release__project", "environment", "created_by").get(
                task=task
            )
            self.environment: Environment | None = deployment.environment
            self.steps, snapshot = deployment.release.process_snapshot, deployment.release.variables_snapshot
        else:
            self.environment = Environment.objects.filter(
                pk=Environment.pk_from_octopus_id(self.arguments.get("EnvironmentId")) or 0
            ).first()
            self.steps, snapshot = self.arguments.get("Process", []), self.arguments.get("Variables", [])
        values, sensitive = resolve_variables(snapshot, self.environment)
        values.update(system_variables(task, self.environment, deployment))
        values.update(self.resume.get("OutputVariables") or {})
        sensitive |= set(self.resume.get("SensitiveOutputs") or [])
        # A task's first run has no log yet (a resumed one carries "Resume" and continues its own).
        self.log = TaskLog(task, sensitive_values=sorted(sensitive), new=not self.resume)
        self.variables = TaskVariables(values, sensitive, self.log)
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.cancel_reason = State.CANCELED
        self.deadline = time.monotonic() + settings.REEF_TASK_TIMEOUT
        self.outcome = Outcome(failed=list(self.resume.get("Failed") or []))
        self.guided_failure = bool(self.arguments.get("UseGuidedFailure")) or bool(
            self.environment and self.environment.use_guided_failure
        )
        self.planner = Planner(task, environment=self.environment, values=values, log=self.log)
        self.runner = InvocationRunner(
            task,
            variables=self.variables,
            log=self.log,
            outcome=self.outcome,
            selector=self.planner.selector,
            cancel=self.cancel,
            deadline=self.deadline,
            mutex=values.get("OctopusBypassDeploymentMutex", "").strip().lower() == "false",
        )
        self.root: ActivityNode | None = None  # the task's log tree: made (or found again, on resume) when it runs
        self.step_nodes: dict[int, ActivityNode] = {}
        self.in_parallel_group = False  # guided failure pauses a task between steps, not inside a parallel group
        self.interrupted = False  # paused for an answer: the task does not end here

    def run(self) -> None:
        watcher = threading.Thread(target=self.watch, name=f"watch-{self.task.pk}", daemon=True)
        watcher.start()
        try:
            if "RootNodeId" in self.resume:
                self.root = ActivityNode.objects.get(pk=self.resume["RootNodeId"])
                self.log.start(self.root)
            else:
                self.root = self.log.node(self.task.description, running=True)
            if self.resume:
                self.resumed()
            self.execute()
        except (Canceled, Interrupted):
            pass
        except Exception as error:  # a bug here must still end the task, with the reason
            logger.exception("task %s failed in the orchestrator", self.task.pk)
            self.outcome.failed.append(f"The server failed while running the task: {type(error).__name__}: {error}")
            self.log.write(self.outcome.failed[-1], Category.FATAL, self.root)
        finally:
            self.done.set()
            watcher.join(5)
            self.end()

    def execute(self) -> None:
        start = int(self.resume.get("NextStep", 0))
        steps = [(i, s) for i, s in enumerate(self.steps) if i >= start]
        earlier = self.resume.get("StepNodeIds") or {}  # a resumed task keeps its tree
        new = [(i, f"Step {i + 1}: {s['Name']}") for i, s in steps if str(i) not in earlier]
        made = dict(zip([i for i, _ in new], self.log.nodes([name for _, name in new], self.root), strict=True))
        self.step_nodes = nodes = {
            i: made[i] if i in made else ActivityNode.objects.get(pk=earlier[str(i)]) for i, _ in steps
        }
        try:
            plans = self.planner.plan(
                [(i, s) for i, s in steps if s["ActionType"] == Step.ActionType.SCRIPT and not s["IsDisabled"]], nodes
            )
        except SelectionError as error:
            self.outcome.failed.append(str(error))
            self.log.write(str(error), Category.ERROR, self.root)
            for node in nodes.values():
                self.log.finish(node, Status.SKIPPED)
            return
        for group in step_groups(steps):
            if self.cancel.is_set():
                raise Canceled
            first_index, first = group[0]
            if first["ActionType"] == Step.ActionType.MANUAL and not first["IsDisabled"] and self.should_run(first):
                self.interrupt(first_index, first, nodes[first_index])
                raise Interrupted
            if len(group) == 1:
                self.run_step(group[0][1], nodes[group[0][0]], plans.get(group[0][0], []))
            else:
                self.in_parallel_group = True
                with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix=f"task-{self.task.pk}-step") as pool:
                    for _ in pool.map(
                        lambda item: in_thread(self.run_step, item[1], nodes[item[0]], plans.get(item[0], [])), group
                    ):
                        pass
                self.in_parallel_group = False

    def should_run(self, step: dict) -> bool:
        condition = step["Condition"]
        if condition == Step.Condition.ALWAYS:
            return True
        if condition == Step.Condition.VARIABLE:
            try:
                return self.variables.condition_holds(step["ConditionVariable"], self.outcome.failed)
            except SubstitutionError as error:
                self.log.write(
                    f"Step {step['Name']!r}: its run condition cannot be evaluated: {error}", Category.ERROR, self.root
                )
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
            self.log.write(
                "Skipped: no enabled deployment target in "
                f"{self.environment.name if self.environment else 'this task'} "
                f"has any of the roles {', '.join(step['TargetRoles'])}.",
                Category.WARNING,
                node,
            )
            self.outcome.warnings = True
            return self.log.finish(node, Status.SKIPPED)
        self.log.start(node)
        for invocation in invocations:
            behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
            # A step's only invocation starts now; others wait, Pending, for their turn.
            invocation.node = self.log.node(
                f"{invocation.choice.worker_name}{behalf}", node, running=len(invocations) == 1
            )
        parallelism = max(1, min(int(step["MaxParallelism"]), len(invocations)))
        if parallelism == 1:
            results = [self.runner.invoke(i) for i in invocations]
        else:
            with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix=f"task-{self.task.pk}-action") as pool:
                results = list(pool.map(lambda i: in_thread(self.runner.invoke, i), invocations))
        if self.cancel.is_set():
            self.log.finish(node, Status.CANCELED)
            raise Canceled
        if Status.FAILED in results:
            if self.guided_failure and not self.in_parallel_group:
                self.ask_for_guidance(step, node)
            self.outcome.fail(f"Step {step['Name']!r} failed.")
            return self.log.finish(node, Status.FAILED)
        warned = Status.SUCCESS_WITH_WARNING in results
        self.outcome.warnings |= warned
        self.log.finish(node, Status.SUCCESS_WITH_WARNING if warned else Status.SUCCESS)

    def interrupt(self, index: int, step: dict, node: ActivityNode) -> None:
        """A manual intervention: free the workers and wait for an answer (selection happens again on resume)."""
        self.log.start(node)
        self.log.write(f"Manual intervention required: {step['Instructions'] or step['Name']}", Category.WAIT, node)
        self.pause(
            index,
            step,
            node,
            Interruption.Type.MANUAL,
            f"Manual intervention: {step['Name']}",
            step["Instructions"] or step["Name"],
        )

    def ask_for_guidance(self, step: dict, node: ActivityNode) -> None:
        """Guided failure: a failed step pauses the task until someone chooses Retry, Ignore or Fail."""
        index = next(i for i, n in self.step_nodes.items() if n.pk == node.pk)
        self.log.write(
            f"Step {step['Name']!r} failed. Guided failure: the deployment waits for someone to choose "
            "Retry, Ignore or Fail.",
            Category.WAIT,
            node,
        )
        self.pause(
            index,
            step,
            node,
            Interruption.Type.GUIDED_FAILURE,
            f"Guidance required: {step['Name']} failed",
            f"Step {step['Name']!r} failed: retry it, ignore the failure, or fail the deployment.",
        )
        raise Interrupted

    def pause(self, index: int, step: dict, node: ActivityNode, kind: str, title: str, instructions: str) -> None:
        """Wait for an answer: the task stays Executing (HasPendingInterruptions) with no server node; the
        answer re-queues it (deployments/services/interruptions.py) and it resumes here, keeping its tree."""
        outputs = self.variables.outputs()
        resume = {
            "NextStep": index,
            "Kind": kind,
            "RootNodeId": self.root.pk,
            "OutputVariables": outputs,
            "StepNodeIds": {str(i): node.pk for i, node in self.step_nodes.items()},
            "SensitiveOutputs": sorted(v for v in outputs.values() if v in self.variables.sensitive),
            "Failed": self.outcome.failed,
            "Warnings": self.outcome.warnings,
        }
        self.log.flush()
        release_leases(self.task)
        with transaction.atomic():
            waiting = ServerTask.objects.filter(pk=self.task.pk, state=State.EXECUTING).update(
                pending_interruption=instructions, arguments={**self.arguments, "Resume": resume}, server_node=""
            )
            if waiting:
                Interruption.objects.create(
                    space=self.space,
                    task=self.task,
                    type=kind,
                    title=title[:500],
                    instructions=instructions,
                    step_index=index,
                    node=node,
                    responsible_team_ids=list(step.get("ResponsibleTeamIds") or []),
                )
        if not waiting:  # canceled meanwhile: end as Canceled, not waiting for an answer that cannot come
            self.cancel.set()
            return
        self.task.refresh_from_db()

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
        if self.interrupted:
            return
        if self.cancel.is_set():
            state = self.cancel_reason
            message = (
                f"The task did not finish within {settings.REEF_TASK_TIMEOUT} seconds and was stopped."
                if state == State.TIMED_OUT
                else "The task was canceled."
            )
            self.log.write(message, Category.ERROR if state == State.TIMED_OUT else Category.WARNING, self.root)
            self.log.finish(self.root, Status.CANCELED if state == State.CANCELED else Status.FAILED)
            finish_task_and_forget_scripts(
                task=self.task, state=state, error_message=message, has_warnings=self.outcome.warnings
            )
        elif self.outcome.failed:
            self.log.finish(self.root, Status.FAILED)
            finish_task_and_forget_scripts(
                task=self.task,
                state=State.FAILED,
                error_message=" ".join(self.outcome.failed),
                has_warnings=self.outcome.warnings,
            )
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
