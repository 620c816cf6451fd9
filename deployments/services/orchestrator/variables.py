"""A task's variables: the snapshot resolved for its environment, Octopus's system variables, what each action
sees, the substituted script a worker gets, and output variables set by earlier steps. Shared by every invocation
thread of one task; the sensitive values grow as scripts derive or output secrets."""

from __future__ import annotations

import shlex
import threading
from typing import TYPE_CHECKING

from django.conf import settings

from deployments.models import Deployment, Environment, Step, Variable
from deployments.services.octostache import SubstitutionError, VariableDictionary
from portal.encryption import decrypt
from servertasks.models import ServerTask, TaskLogLine
from servertasks.services.tasklog import TaskLog

if TYPE_CHECKING:
    from deployments.services.orchestrator.planner import Invocation


FALSE_WORDS = {"", "false", "0", "no", "off"}


def substitute(text: str, values: dict[str, str], sensitive: set[str] | frozenset[str] = frozenset()) -> str:
    """Octopus's substitution (deployments/services/octostache/): nested values, filters, #{if}, #{each}…;
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
        raise SubstitutionError(
            f"Step {step['Name']!r}: name the script file inside package {packages[0]['PackageId']}."
        )
    if step["Syntax"] == Step.Syntax.PYTHON:
        return f"import runpy as _runpy\n_runpy.run_path({path!r}, run_name='__main__')\n"
    if step["Syntax"] == Step.Syntax.POWERSHELL:
        return f"& (Join-Path $PSScriptRoot {path!r}) @args\n"
    return f'. ./{shlex.quote(path)} "$@"\n'


def system_variables(
    task: ServerTask, environment: Environment | None, deployment: Deployment | None
) -> dict[str, str]:
    """Octopus.Task.Id, Octopus.Project.Name, Octopus.Release.Number…: what the task is, for scripts to read."""
    values = {
        "Octopus.Task.Id": task.octopus_id,
        "Octopus.Space.Id": task.space.octopus_id,
        "Octopus.Space.Name": task.space.name,
        "Octopus.Web.ServerUri": getattr(settings, "REEF_PUBLIC_URL", ""),
    }
    if task.project_id:
        values.update({"Octopus.Project.Id": task.project.octopus_id, "Octopus.Project.Name": task.project.name})
    if environment:
        values.update({"Octopus.Environment.Id": environment.octopus_id, "Octopus.Environment.Name": environment.name})
    if deployment:
        release = deployment.release
        values.update(
            {
                "Octopus.Release.Id": release.octopus_id,
                "Octopus.Release.Number": release.version,
                "Octopus.Release.Notes": release.release_notes,
                "Octopus.Deployment.Id": deployment.octopus_id,
                "Octopus.Deployment.Name": f"Deploy to {environment.name}",
                "Octopus.Deployment.CreatedBy.Username": deployment.created_by.username
                if deployment.created_by
                else "",
            }
        )
    if task.name == "RunbookRun":
        values.update(
            {
                "Octopus.Runbook.Id": task.arguments["RunbookId"],
                "Octopus.RunbookRun.Id": task.runbook_run.octopus_id,
                "Octopus.Runbook.Name": task.runbook_run.runbook.name,
            }
        )
    return values


class TaskVariables:
    """The values every step of one task sees, and which of them are secret (masked in the log)."""

    def __init__(self, values: dict[str, str], sensitive: set[str], log: TaskLog):
        self.values = values
        self.sensitive = sensitive
        self.log = log
        self.lock = threading.Lock()  # invocation threads add outputs and derived secrets

    def for_action(self, invocation: Invocation, failed: list[str]) -> dict[str, str]:
        """The values one action sees: the task's, plus Octopus.Action.*, Octopus.WorkerPool.*, Octopus.Machine.*…"""
        step, choice, target = invocation.step, invocation.choice, invocation.target
        values = dict(self.values)
        values.update(
            {
                "Octopus.Step.Name": step["Name"],
                "Octopus.Action.Name": step["Name"],
                "Octopus.Action.MaxParallelism": str(step["MaxParallelism"]),
                "Octopus.WorkerPool.Id": choice.pool.octopus_id,
                "Octopus.WorkerPool.Name": choice.pool.name,
                "Octopus.Worker.Name": choice.worker_name,
                "Octopus.Deployment.Error": "; ".join(failed),
            }
        )
        if target is not None:
            values.update(
                {
                    "Octopus.Machine.Id": target.octopus_id,
                    "Octopus.Machine.Name": target.name,
                    "Octopus.Machine.Roles": ",".join(target.roles),
                }
            )
        return values

    def condition_holds(self, expression: str, failed: list[str]) -> bool:
        """A step's run condition "Variable": true unless it evaluates to a false word. Raises SubstitutionError."""
        values = dict(self.values, **{"Octopus.Deployment.Error": "; ".join(failed)})
        return substitute(expression, values, self.sensitive).strip().lower() not in FALSE_WORDS

    def script_for(self, invocation: Invocation, values: dict[str, str]) -> tuple[str, list[dict]]:
        """The script and the variables the worker gets, substituted in the environment's scope (nested values
        evaluated). Values derived from sensitive ones (`#{Secret | ToBase64}`) are masked like them."""
        step = invocation.step
        dictionary = VariableDictionary(values, sensitive=self.sensitive)
        script = step["ScriptBody"]
        if step.get("ScriptSource") == "Package":
            script = script_from_package(step)
        body = with_parameters(
            step["Syntax"], dictionary.evaluate(script), dictionary.evaluate(step["ScriptParameters"])
        )
        resolved, errors = dictionary.resolved()
        for error in errors:
            self.log.write(f"Variable substitution: {error}", TaskLogLine.Category.WARNING, invocation.node)
        derived = dictionary.derived_sensitive - self.sensitive
        if derived:
            with self.lock:
                self.sensitive |= derived
            self.log.add_sensitive(sorted(derived))
        sensitive = self.sensitive
        variables = [
            {"Name": name, "Value": value, "IsSensitive": value in sensitive or values.get(name) in sensitive}
            for name, value in resolved.items()
        ]
        return body, variables

    def set_output(self, step_name: str, target_name: str | None, name: str, value: str, *, sensitive: bool) -> None:
        """An output variable of a step (and of its target), for later steps: Octopus.Action[Step].Output.Name."""
        with self.lock:
            self.values[f"Octopus.Action[{step_name}].Output.{name}"] = value
            if target_name is not None:
                self.values[f"Octopus.Action[{step_name}].Output[{target_name}].{name}"] = value
            if sensitive:
                self.sensitive.add(value)
                self.log.add_sensitive([value])

    def outputs(self) -> dict[str, str]:
        """The output variables set so far: a paused task keeps them for when it resumes."""
        return {k: v for k, v in self.values.items() if k.startswith("Octopus.Action[")}
