"""Octopus's DeploymentProcessResource (Steps holding Actions, `Octopus.Script` properties) and VariableSetResource,
both ways: rendered from Reef's steps and variables, and parsed from a PUT into the specs the services take.
Reef runs one action per step; property values are strings, as Octopus stores them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiTypes, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from deployments.models import Environment, Project, Runbook, Step, Variable
from deployments.services.deploy import step_snapshot
from deployments.services.processes import StepSpec, VariableSpec
from deployments.services.snapshots import pool_id
from infrastructure.models import WorkerPool
from portal.api.base import StrictSerializer

SCRIPT = "Octopus.Script"
MANUAL = "Octopus.Manual"
_CONDITIONS = {"Success": Step.Condition.SUCCESS, "Always": Step.Condition.ALWAYS, "Variable": Step.Condition.VARIABLE}


def action_resource(step: dict) -> dict:
    """One step (as deploy.step_snapshot gives it) as Octopus's DeploymentStepResource with its one action."""
    properties = {"Octopus.Action.RunOnServer": "true"}
    if step["ActionType"] == SCRIPT:
        properties.update(
            {
                "Octopus.Action.Script.ScriptSource": step.get("ScriptSource") or "Inline",
                "Octopus.Action.Script.Syntax": step["Syntax"],
                "Octopus.Action.Script.ScriptBody": step["ScriptBody"],
            }
        )
        if step.get("ScriptSource") == "Package":
            properties["Octopus.Action.Script.ScriptFileName"] = step.get("ScriptFileName") or ""
        if step["ScriptParameters"]:
            properties["Octopus.Action.Script.ScriptParameters"] = step["ScriptParameters"]
    if step["Instructions"]:
        properties["Octopus.Action.Manual.Instructions"] = step["Instructions"]
    if step.get("ResponsibleTeamIds"):
        properties["Octopus.Action.Manual.ResponsibleTeamIds"] = ",".join(step["ResponsibleTeamIds"])
    step_properties = {"Octopus.Action.MaxParallelism": str(step["MaxParallelism"])}
    if step["TargetRoles"]:
        step_properties["Octopus.Action.TargetRoles"] = ",".join(step["TargetRoles"])
    if step["ConditionVariable"]:
        step_properties["Octopus.Step.ConditionVariableExpression"] = step["ConditionVariable"]
    pool = pool_id(step["WorkerPoolId"])
    return {
        "Id": step["Id"],
        "Name": step["Name"],
        "Condition": step["Condition"],
        "StartTrigger": "StartWithPrevious" if step["StartWithPrevious"] else "StartAfterPrevious",
        "PackageRequirement": "LetOctopusDecide",
        "Properties": step_properties,
        "Links": {},
        "Actions": [
            {
                "Id": step["Id"],
                "Name": step["Name"],
                "ActionType": step["ActionType"],
                "IsDisabled": step["IsDisabled"],
                "IsRequired": step["ActionType"] == MANUAL,
                "CanBeUsedForProjectVersioning": bool(step["Packages"]),
                "Condition": "Success",
                "Channels": [],
                "Environments": [],
                "ExcludedEnvironments": [],
                "TenantTags": [],
                "Notes": None,
                "Container": {"FeedId": None, "Image": None},
                "WorkerPoolId": pool,
                "WorkerPoolVariable": step["WorkerPoolVariable"] or None,
                "Packages": [
                    {
                        "Id": p["PackageId"],
                        "Name": "",
                        "PackageId": p["PackageId"],
                        "FeedId": "feeds-builtin",
                        "AcquisitionLocation": "ExecutionTarget",
                        "Properties": {},
                        **({"Version": p["Version"]} if p.get("Version") else {}),
                    }
                    for p in step["Packages"]
                ],
                "Properties": properties,
                "Links": {},
            }
        ],
    }


def process_resource(project: Project, runbook: Runbook | None = None) -> dict:
    space = project.space.octopus_id
    steps = Step.objects.filter(project=project, runbook=runbook).select_related("worker_pool")
    rendered = [action_resource(step_snapshot(step, project.space, pin_packages=False)) for step in steps]
    if runbook is not None:
        return {
            "Id": f"RunbookProcess-{runbook.octopus_id}",
            "SpaceId": space,
            "ProjectId": project.octopus_id,
            "RunbookId": runbook.octopus_id,
            "Version": runbook.process_version,
            "Steps": rendered,
            "LastSnapshotId": None,
            "Links": {
                "Self": f"/api/{space}/projects/{project.octopus_id}"
                f"/runbookProcesses/RunbookProcess-{runbook.octopus_id}"
            },
        }
    return {
        "Id": f"deploymentprocess-{project.octopus_id}",
        "SpaceId": space,
        "ProjectId": project.octopus_id,
        "Version": project.process_version,
        "Steps": rendered,
        "LastSnapshotId": None,
        "Links": {"Self": f"/api/{space}/projects/{project.octopus_id}/deploymentprocesses"},
    }


# Parsing a PUT --------------------------------------------------------------------------------------------


def _text(value: Any, where: str, errors: dict, default: str = "", max_length: int = 1_000_000) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        errors[where] = ["Expected a string (Octopus property values are strings)."]
        return default
    if "\x00" in value:
        errors[where] = ["Null characters are not allowed."]
        return default
    if len(value) > max_length:
        errors[where] = [f"At most {max_length} characters."]
        return default
    return value


def _flag(value: Any, where: str, errors: dict, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    errors[where] = ["Expected true or false."]
    return default


def _object(value: Any, where: str, errors: dict) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[where] = ["Expected an object."]
        return {}
    return value


def _step_worker_pool(project: Project, pool_id: Any, a: str, errors: dict) -> WorkerPool | None:
    if pool_id in (None, ""):
        return None
    if not isinstance(pool_id, str):
        errors[f"{a}.WorkerPoolId"] = ["Expected a worker pool id such as WorkerPools-1."]
        return None
    pool = WorkerPool.objects.filter(space=project.space_id, pk=WorkerPool.pk_from_octopus_id(pool_id) or 0).first()
    if pool is None:
        errors[f"{a}.WorkerPoolId"] = [f"No worker pool {pool_id} in {project.space.name}."]
    return pool


def _step_packages(raw_packages: Any, a: str, errors: dict) -> list[dict]:
    packages = []
    if not isinstance(raw_packages, list):
        errors[f"{a}.Packages"] = ["Expected a list of package references."]
        raw_packages = []
    for i, reference in enumerate(raw_packages):
        p = f"{a}.Packages[{i}]"
        if (
            not isinstance(reference, dict)
            or not isinstance(reference.get("PackageId"), str)
            or not reference["PackageId"]
        ):
            errors[p] = ["Give each package reference a PackageId."]
            continue
        if reference.get("FeedId") not in (None, "", "feeds-builtin"):
            errors[f"{p}.FeedId"] = ["Reef has one feed, the built-in feed (feeds-builtin)."]
        packages.append(
            {
                "PackageId": _text(reference["PackageId"], f"{p}.PackageId", errors, max_length=100),
                "Version": _text(reference.get("Version"), f"{p}.Version", errors, max_length=50),
            }
        )
    return packages


def _step_spec(project: Project, raw: Any, where: str, errors: dict) -> StepSpec | None:
    if not isinstance(raw, dict):
        errors[where] = ["Expected a step object with Name and Actions."]
        return None
    actions = raw.get("Actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        errors[f"{where}.Actions"] = ["Give exactly one action: Reef runs one action per step."]
        return None
    action, step_properties = actions[0], _object(raw.get("Properties"), f"{where}.Properties", errors)
    properties = _object(action.get("Properties"), f"{where}.Actions[0].Properties", errors)
    a = f"{where}.Actions[0]"
    action_type = _text(action.get("ActionType"), f"{a}.ActionType", errors, SCRIPT)
    if action_type not in (SCRIPT, MANUAL):
        errors[f"{a}.ActionType"] = [f"Reef runs {SCRIPT} and {MANUAL} actions, not {action_type}."]
    run_on_server = _flag(
        properties.get("Octopus.Action.RunOnServer"), f"{a}.Properties.Octopus.Action.RunOnServer", errors, True
    )
    if not run_on_server and action_type == SCRIPT:
        errors[f"{a}.Properties.Octopus.Action.RunOnServer"] = [
            "Reef runs scripts on the server or on workers (true); it has no deployment targets to run them on."
        ]
    source = _text(properties.get("Octopus.Action.Script.ScriptSource"), f"{a}.Properties", errors, "Inline")
    if source not in ("Inline", "Package"):
        errors[f"{a}.Properties.Octopus.Action.Script.ScriptSource"] = ["Choose Inline or Package."]
    teams = [
        t.strip()
        for t in _text(
            properties.get("Octopus.Action.Manual.ResponsibleTeamIds"), f"{a}.Properties", errors, max_length=10_000
        ).split(",")
        if t.strip()
    ]
    pool_id = action.get("WorkerPoolId")
    pool = _step_worker_pool(project, pool_id, a, errors)
    pool_variable = _text(action.get("WorkerPoolVariable"), f"{a}.WorkerPoolVariable", errors, max_length=200)
    roles = [
        r.strip()
        for r in _text(step_properties.get("Octopus.Action.TargetRoles"), f"{where}.Properties", errors).split(",")
        if r.strip()
    ]
    location = (
        Step.Location.ON_BEHALF
        if roles
        else Step.Location.WORKER
        if pool is not None or pool_variable or pool_id
        else Step.Location.SERVER
    )
    packages = _step_packages(action.get("Packages") or [], a, errors)
    condition = _text(raw.get("Condition"), f"{where}.Condition", errors, "Success")
    if condition not in _CONDITIONS:
        errors[f"{where}.Condition"] = [f"Choose one of {', '.join(_CONDITIONS)}."]
    trigger = _text(raw.get("StartTrigger"), f"{where}.StartTrigger", errors, "StartAfterPrevious")
    if trigger not in ("StartAfterPrevious", "StartWithPrevious"):
        errors[f"{where}.StartTrigger"] = ["Choose StartAfterPrevious or StartWithPrevious."]
    parallelism = _text(step_properties.get("Octopus.Action.MaxParallelism"), f"{where}.Properties", errors, "10")
    if not parallelism.strip().isdigit() or not 1 <= int(parallelism) <= 1000:
        errors[f"{where}.Properties.Octopus.Action.MaxParallelism"] = ["A whole number from 1 to 1000."]
        parallelism = "10"
    step_id = Step.pk_from_octopus_id(raw.get("Id"))  # any other id (a client's GUID) is a new step
    values = {
        "name": _text(raw.get("Name"), f"{where}.Name", errors),
        "action_type": action_type,
        "location": location,
        "worker_pool": pool,
        "worker_pool_variable": pool_variable,
        "target_roles": roles,
        "syntax": _text(properties.get("Octopus.Action.Script.Syntax"), f"{a}.Properties", errors, "Bash"),
        "script_body": _text(properties.get("Octopus.Action.Script.ScriptBody"), f"{a}.Properties", errors),
        "script_parameters": _text(
            properties.get("Octopus.Action.Script.ScriptParameters"), f"{a}.Properties", errors, max_length=1000
        ),
        "packages": packages,
        "start_with_previous": trigger == "StartWithPrevious",
        "condition": _CONDITIONS.get(condition, Step.Condition.SUCCESS),
        "condition_variable": _text(
            step_properties.get("Octopus.Step.ConditionVariableExpression"),
            f"{where}.Properties",
            errors,
            max_length=200,
        ),
        "max_parallelism": int(parallelism),
        "instructions": _text(properties.get("Octopus.Action.Manual.Instructions"), f"{a}.Properties", errors),
        "script_source": source if source in ("Inline", "Package") else "Inline",
        "script_file_name": _text(
            properties.get("Octopus.Action.Script.ScriptFileName"), f"{a}.Properties", errors, max_length=300
        ),
        "responsible_teams": teams,
        "is_disabled": _flag(action.get("IsDisabled"), f"{a}.IsDisabled", errors),
    }
    if "IsDisabled" in action and not isinstance(action["IsDisabled"], bool):
        errors[f"{a}.IsDisabled"] = ["Expected true or false."]
    return StepSpec(values=values, step_id=step_id)


@extend_schema_field(OpenApiTypes.OBJECT)
class _AnyObject(serializers.DictField):
    pass


class ProcessWriteSerializer(StrictSerializer):
    """Octopus's DeploymentProcessResource as PUT: the whole list of steps, and the Version it was read at."""

    Version = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    Steps = serializers.ListField(child=_AnyObject(), max_length=500)


def parse_steps(project: Project, steps: list) -> list[StepSpec]:
    errors: dict[str, list[str]] = {}
    specs = [_step_spec(project, raw, f"Steps[{i}]", errors) for i, raw in enumerate(steps)]
    if errors:
        raise ValidationError(errors)
    return [spec for spec in specs if spec is not None]


# Variable sets -------------------------------------------------------------------------------------------


def variable_set_resource(project: Project) -> dict:
    space = project.space.octopus_id
    variables = []
    for v in project.variables.prefetch_related("environments"):
        variables.append(
            {
                "Id": v.octopus_id,
                "Name": v.name,
                "Value": None if v.is_sensitive else v.value,
                "Description": None,
                "Scope": {"Environment": [e.octopus_id for e in v.environments.all()]} if v.environments.all() else {},
                "IsEditable": True,
                "Prompt": None,
                "Type": v.type,
                "IsSensitive": v.is_sensitive,
            }
        )
    return {
        "Id": f"variableset-{project.octopus_id}",
        "SpaceId": space,
        "OwnerId": project.octopus_id,
        "Version": project.variable_set_version,
        "Variables": variables,
        "ScopeValues": {
            "Environments": [
                {"Id": e.octopus_id, "Name": e.name} for e in Environment.objects.filter(space=project.space_id)
            ],
            "Machines": [],
            "Actions": [],
            "Roles": [],
            "Channels": [],
            "TenantTags": [],
            "Processes": [],
        },
        "Links": {"Self": f"/api/{space}/variables/variableset-{project.octopus_id}"},
    }


class VariableSetWriteSerializer(StrictSerializer):
    Version = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    Variables = serializers.ListField(child=_AnyObject(), max_length=5000)


def _scoped_environments(project: Project, scope: dict, environments: dict, where: str, errors: dict) -> list:
    chosen = []
    for key, ids in scope.items():
        if key != "Environment":
            if ids:
                errors[f"{where}.Scope.{key}"] = ["Reef scopes variables by Environment only."]
            continue
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            errors[f"{where}.Scope.Environment"] = ["Expected a list of environment ids."]
            continue
        missing = [x for x in ids if x.lower() not in environments]
        if missing:
            errors[f"{where}.Scope.Environment"] = [f"No environment {', '.join(missing)} in {project.space.name}."]
        chosen = [environments[x.lower()] for x in ids if x.lower() in environments]
    return chosen


def parse_variables(project: Project, variables: list) -> list[VariableSpec]:
    errors: dict[str, list[str]] = {}
    specs = []
    environments = {e.octopus_id.lower(): e for e in Environment.objects.filter(space=project.space_id)}
    for i, raw in enumerate(variables):
        where = f"Variables[{i}]"
        if not isinstance(raw, dict):
            errors[where] = ["Expected a variable object with Name and Value."]
            continue
        sensitive = _flag(raw.get("IsSensitive"), f"{where}.IsSensitive", errors)
        if "IsSensitive" in raw and not isinstance(raw["IsSensitive"], (bool, type(None))):
            errors[f"{where}.IsSensitive"] = ["Expected true or false."]
        kind = _text(
            raw.get("Type"), f"{where}.Type", errors, Variable.Type.SENSITIVE if sensitive else Variable.Type.TEXT
        )
        if kind not in Variable.Type.values:
            errors[f"{where}.Type"] = [f"Choose one of {', '.join(Variable.Type.values)}."]
        if sensitive and kind == Variable.Type.TEXT:
            kind = Variable.Type.SENSITIVE
        value = raw.get("Value")
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            errors[f"{where}.Value"] = [
                "Expected a string without null characters (or null to keep a sensitive value)."
            ]
            value = None
        pool = None
        if kind == Variable.Type.WORKER_POOL:
            pool = WorkerPool.objects.filter(
                space=project.space_id, pk=WorkerPool.pk_from_octopus_id(value) or 0
            ).first()
            if pool is None:
                errors[f"{where}.Value"] = [
                    f"A Worker Pool variable's value is a worker pool id of {project.space.name}."
                ]
        chosen = _scoped_environments(
            project, _object(raw.get("Scope"), f"{where}.Scope", errors), environments, where, errors
        )
        variable_id = None
        if raw.get("Id") not in (None, ""):
            variable_id = Variable.pk_from_octopus_id(raw.get("Id"))
        specs.append(
            VariableSpec(
                name=_text(raw.get("Name"), f"{where}.Name", errors),
                type=kind,
                value=value,
                worker_pool=pool,
                environments=chosen,
                variable_id=variable_id,
            )
        )
    if errors:
        raise ValidationError(errors)
    return specs
