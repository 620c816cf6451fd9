"""What a release, a runbook snapshot or a task carries of a process and its variables, built in one place.

A snapshot names its worker pool as Octopus does ("WorkerPools-12"). Step snapshots stored before that held the
pool's bare primary key (12); they stay in the database as they are, so every reader goes through `pool_pk` or
`pool_id`, which take either form."""

from __future__ import annotations

from typing import TypedDict

from deployments.models import Step, Variable
from infrastructure.models import WorkerPool


class PackageSnapshot(TypedDict):
    PackageId: str
    Version: str
    Sha256: str
    FileName: str


class StepSnapshot(TypedDict):
    Id: str
    Name: str
    ActionType: str
    Location: str
    WorkerPoolId: str | None  # "WorkerPools-12"; an old snapshot may hold 12
    WorkerPoolVariable: str
    TargetRoles: list[str]
    Syntax: str
    ScriptBody: str
    ScriptParameters: str
    Packages: list[dict]  # PackageSnapshot once pinned; an unpinned reference is {PackageId, Version}
    StartWithPrevious: bool
    Condition: str
    ConditionVariable: str
    MaxParallelism: int
    Instructions: str
    IsDisabled: bool
    ScriptSource: str
    ScriptFileName: str
    ResponsibleTeamIds: list[str]


class VariableSnapshot(TypedDict):
    Name: str
    Type: str
    Value: str  # a Sensitive value stays Fernet ciphertext
    WorkerPoolId: str | None
    EnvironmentIds: list[int]


def pool_pk(value: object) -> int | None:
    """The primary key of a snapshot's WorkerPoolId: "WorkerPools-12", or 12 as older step snapshots stored it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return WorkerPool.pk_from_octopus_id(value)


def pool_id(value: object) -> str | None:
    """A snapshot's WorkerPoolId in Octopus's form ("WorkerPools-12"), whichever form it was stored in."""
    pk = pool_pk(value)
    return f"{WorkerPool.ID_PREFIX}-{pk}" if pk else None


def build_step_snapshot(
    *,
    name: str,
    syntax: str,
    script_body: str,
    step_id: str = "",
    action_type: str = Step.ActionType.SCRIPT,
    location: str = Step.Location.WORKER,
    worker_pool_pk: int | None = None,
    worker_pool_variable: str = "",
    target_roles=(),
    script_parameters: str = "",
    packages=(),
    start_with_previous: bool = False,
    condition: str = Step.Condition.SUCCESS,
    condition_variable: str = "",
    max_parallelism: int = 10,
    instructions: str = "",
    is_disabled: bool = False,
    script_source: str = "Inline",
    script_file_name: str = "",
    responsible_team_ids=(),
) -> StepSnapshot:
    return {
        "Id": step_id,
        "Name": name,
        "ActionType": action_type,
        "Location": location,
        "WorkerPoolId": pool_id(worker_pool_pk),
        "WorkerPoolVariable": worker_pool_variable,
        "TargetRoles": list(target_roles),
        "Syntax": syntax,
        "ScriptBody": script_body,
        "ScriptParameters": script_parameters,
        "Packages": list(packages),
        "StartWithPrevious": start_with_previous,
        "Condition": condition,
        "ConditionVariable": condition_variable,
        "MaxParallelism": max(1, max_parallelism),
        "Instructions": instructions,
        "IsDisabled": is_disabled,
        "ScriptSource": script_source,
        "ScriptFileName": script_file_name,
        "ResponsibleTeamIds": list(responsible_team_ids),
    }


def build_variable_snapshot(variable: Variable) -> VariableSnapshot:
    return {
        "Name": variable.name,
        "Type": variable.type,
        "Value": variable.value,
        "WorkerPoolId": pool_id(variable.worker_pool_id),
        "EnvironmentIds": sorted(e.pk for e in variable.environments.all()),
    }
