"""The planner: which worker runs each step, chosen when the task starts (selection.py), and which steps run
together ("start with previous")."""

from __future__ import annotations

from dataclasses import dataclass

from deployments.models import DeploymentTarget, Environment, Step
from deployments.services.selection import Choice, SelectionError, WorkerSelector, resolve_pool
from infrastructure.models import Worker
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services.tasklog import TaskLog

Category = TaskLogLine.Category


@dataclass
class Invocation:
    """One run of a step's script: on the chosen worker, on behalf of a target for a step that has them."""

    step: dict
    choice: Choice
    target: DeploymentTarget | None = None
    node: ActivityNode | None = None


def step_groups(steps: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """Steps that start with the previous one join its group; a manual intervention is always alone."""
    groups: list[list[tuple[int, dict]]] = []
    for item in steps:
        manual = item[1]["ActionType"] == Step.ActionType.MANUAL
        if (
            groups
            and item[1]["StartWithPrevious"]
            and not manual
            and groups[-1][0][1]["ActionType"] != Step.ActionType.MANUAL
        ):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


class Planner:
    def __init__(self, task: ServerTask, *, environment: Environment | None, values: dict[str, str], log: TaskLog):
        self.task = task
        self.space = task.space
        self.arguments = task.arguments
        self.environment = environment
        self.values = values
        self.log = log
        self.selector = WorkerSelector(task)  # also re-plans a step whose worker cannot be reached

    def plan(self, steps: list[tuple[int, dict]], nodes: dict[int, ActivityNode]) -> dict[int, list[Invocation]]:
        """Workers for every step, chosen now, at the start of the task."""
        selector = self.selector
        plans: dict[int, list[Invocation]] = {}
        wanted = self.arguments.get("WorkerIds") or []
        chosen_workers = (
            list(Worker.objects.filter(space=self.space, pk__in=[Worker.pk_from_octopus_id(i) for i in wanted]))
            if wanted
            else []
        )
        if len(chosen_workers) != len(wanted):
            gone = sorted(set(wanted) - {w.octopus_id for w in chosen_workers})
            raise SelectionError(f"The Script Console named workers that no longer exist: {', '.join(gone)}.")
        for index, step in steps:
            if chosen_workers:
                how = "the Script Console names its workers"
                plans[index] = [
                    Invocation(
                        step,
                        selector.lease(
                            w,
                            w.worker_pools.order_by("sort_order").first(),
                            step["Name"],
                            "it was chosen in the Script Console",
                        ),
                    )
                    for w in chosen_workers
                ]
            else:
                pool, how = resolve_pool(step, space=self.space, environment=self.environment, variables=self.values)
                packages = tuple((p["PackageId"], p["Version"]) for p in step["Packages"])
                targets = self.targets_for(step) if step["Location"] == Step.Location.ON_BEHALF else [None]
                plans[index] = [
                    Invocation(
                        step,
                        selector.choose(
                            pool, step["Name"], packages, with_previous=bool(step.get("StartWithPrevious"))
                        ),
                        target,
                    )
                    for target in targets
                ]
            for invocation in plans[index]:
                behalf = f" on behalf of {invocation.target.name}" if invocation.target else ""
                self.log.write(
                    f"Step {index + 1} {step['Name']!r}{behalf}: {invocation.choice.worker_name} was chosen "
                    f"because {invocation.choice.rule} ({how}).",
                    Category.INFO,
                    nodes[index],
                )
        return plans

    def targets_for(self, step: dict) -> list[DeploymentTarget]:
        roles = set(step["TargetRoles"])
        if self.environment is None:
            return []
        targets = DeploymentTarget.objects.filter(space=self.space, environments=self.environment, is_disabled=False)
        return [t for t in targets if roles & set(t.roles)]
