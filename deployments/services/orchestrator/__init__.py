"""The orchestrator: runs one server task (a deployment, a runbook run, a Script Console script).

Workers are chosen when the task starts (planner.py, over selection.py). Steps run in order, those marked "start
with previous" together; each step's invocations (one, or one per target) run up to its MaxParallelism at once
(orchestration.py). Invocations are threads blocked in long-polls on the transports (invocations.py), so one server
node runs its whole task cap without an OS process per step. A watcher thread keeps the task's heartbeat in Redis,
and turns a cancel request or the task's timeout into cancelled scripts. variables.py holds what scripts see.
"""

from deployments.services.orchestrator.invocations import Canceled, InvocationRunner, Outcome
from deployments.services.orchestrator.orchestration import Interrupted, Orchestration, run_server_task
from deployments.services.orchestrator.planner import Invocation, Planner, step_groups
from deployments.services.orchestrator.variables import (
    TaskVariables,
    resolve_variables,
    script_from_package,
    substitute,
    system_variables,
    with_parameters,
)

__all__ = [
    "Canceled",
    "Interrupted",
    "Invocation",
    "InvocationRunner",
    "Orchestration",
    "Outcome",
    "Planner",
    "TaskVariables",
    "resolve_variables",
    "run_server_task",
    "script_from_package",
    "step_groups",
    "substitute",
    "system_variables",
    "with_parameters",
]
