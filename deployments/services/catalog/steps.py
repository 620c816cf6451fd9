"""The steps of a deployment process or runbook: every rule a step follows, and the process Version they raise."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max, Q

from deployments.models import Package, Project, Runbook, Step, Variable
from deployments.services.catalog.editing import ROLE_RE, record_saved, reorder
from portal.models import Event, Space, Team, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot

STEP_FIELDS = [
    "name",
    "action_type",
    "location",
    "worker_pool",
    "worker_pool_variable",
    "target_roles",
    "syntax",
    "script_body",
    "script_parameters",
    "packages",
    "start_with_previous",
    "condition",
    "condition_variable",
    "max_parallelism",
    "instructions",
    "is_disabled",
]
STEP_FIELDS += ["responsible_teams", "script_source", "script_file_name"]  # interruptions and ScriptSource=Package


def _package_errors(space: Space, packages) -> list[str]:
    if not isinstance(packages, list) or any(not isinstance(p, dict) or not p.get("PackageId") for p in packages):
        return ["Reference packages as a list of {PackageId, Version}."]
    errors = []
    for reference in packages:
        found = Package.objects.filter(space=space, package_id=reference["PackageId"])
        if reference.get("Version"):
            found = found.filter(version=reference["Version"])
        if not found.exists():
            wanted = reference["PackageId"] + (f" {reference['Version']}" if reference.get("Version") else "")
            errors.append(f"The built-in feed has no package {wanted}.")
    return errors


STEP_DEFAULTS = {
    "action_type": Step.ActionType.SCRIPT,
    "location": Step.Location.WORKER,
    "worker_pool": None,
    "worker_pool_variable": "",
    "target_roles": [],
    "syntax": Step.Syntax.BASH,
    "script_body": "",
    "script_parameters": "",
    "packages": [],
    "start_with_previous": False,
    "condition": Step.Condition.SUCCESS,
    "condition_variable": "",
    "max_parallelism": 10,
    "instructions": "",
    "is_disabled": False,
    "responsible_teams": [],
    "script_source": "Inline",
    "script_file_name": "",
}

Fail = Callable[[str, str], None]


def _step_values(project: Project, runbook: Runbook | None, values: dict, exclude_pk: int | None) -> dict:
    """Every rule a step must follow; returns the values to store (a server step's pool fields are empty).

    1. Fill in the defaults; an unknown field is a programming error, not the user's.
    2. Check what every step has (script source, teams, name, choices), then what its kind needs.
    3. Refuse with every problem at once, each under its field."""
    unknown = set(values) - set(STEP_FIELDS)
    if unknown:
        raise ValueError(f"unknown step fields: {sorted(unknown)}")
    v = {**STEP_DEFAULTS, **values}
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    _script_source_and_teams(project, v, fail)
    _check_name(project, runbook, v, exclude_pk, fail)
    _check_choices(v, fail)
    v["worker_pool_variable"] = (v["worker_pool_variable"] or "").strip()
    v["target_roles"] = [r.strip() for r in v["target_roles"] or [] if r and r.strip()]
    if v["action_type"] == Step.ActionType.MANUAL:
        _check_manual_step(v, fail)
    elif v["action_type"] == Step.ActionType.SCRIPT:
        _check_script_step(project, v, fail)
    _check_parallelism_and_condition(v, fail)
    if errors:
        raise ValidationError(errors)
    if v["location"] == Step.Location.SERVER:
        v["worker_pool"], v["worker_pool_variable"] = None, ""
    return v


def _check_name(project: Project, runbook: Runbook | None, v: dict, exclude_pk: int | None, fail: Fail) -> None:
    v["name"] = (v.get("name") or "").strip()
    if not v["name"]:
        fail("name", "Give the step a name.")
    elif len(v["name"]) > 200:
        fail("name", "A step name has at most 200 characters.")
    elif Step.objects.filter(project=project, runbook=runbook, name__iexact=v["name"]).exclude(pk=exclude_pk).exists():
        fail("name", f"The process already has a step named {v['name']}.")


def _check_choices(v: dict, fail: Fail) -> None:
    for field, choices in (
        ("action_type", Step.ActionType),
        ("location", Step.Location),
        ("syntax", Step.Syntax),
        ("condition", Step.Condition),
    ):
        if v[field] not in choices.values:
            fail(field, f"Choose one of {', '.join(choices.labels)}.")


def _check_manual_step(v: dict, fail: Fail) -> None:
    """A manual intervention runs nowhere: it only needs instructions for the reviewer."""
    v.update(
        location=Step.Location.SERVER,
        worker_pool=None,
        worker_pool_variable="",
        target_roles=[],
        script_body="",
        script_parameters="",
        packages=[],
    )
    if not (v["instructions"] or "").strip():
        fail("instructions", "Tell the reviewer what to check before they proceed.")


def _check_script_step(project: Project, v: dict, fail: Fail) -> None:
    if v["location"] == Step.Location.SERVER:
        if v["worker_pool"] is not None or v["worker_pool_variable"]:
            fail("worker_pool", "A step that runs on the server takes no pool: it uses the default worker pool.")
    elif v["location"] in (Step.Location.WORKER, Step.Location.ON_BEHALF):
        _check_worker_pool(project, v["worker_pool"], v["worker_pool_variable"], fail)
    if v["location"] == Step.Location.ON_BEHALF:
        _check_target_roles(v["target_roles"], fail)
    else:
        v["target_roles"] = []
    if not (v["script_body"] or "").strip() and v["script_source"] == "Inline":
        fail("script_body", "Write the script this step runs.")
    for message in _package_errors(project.space, v["packages"]):
        fail("packages", message)


def _check_worker_pool(project: Project, pool, variable: str, fail: Fail) -> None:
    """A step on a worker names its pool directly or through a Worker Pool variable, not both."""
    if pool is None and not variable:
        fail("worker_pool", "Choose a worker pool, or name the Worker Pool variable that chooses one.")
    elif pool is not None and variable:
        fail("worker_pool_variable", "Choose the pool directly or via a variable, not both.")
    if pool is not None and pool.space_id != project.space_id:
        fail("worker_pool", f"{pool.name} is not a worker pool of {project.space.name}.")
    if variable and not project.variables.filter(name=variable, type=Variable.Type.WORKER_POOL).exists():
        fail(
            "worker_pool_variable",
            f"{project.name} has no Worker Pool variable named {variable}: add it on the Variables page first.",
        )


def _check_target_roles(roles: list[str], fail: Fail) -> None:
    if not roles:
        fail("target_roles", "Name at least one target role.")
    elif bad := [r for r in roles if not ROLE_RE.fullmatch(r)]:
        fail("target_roles", f"A role is letters, digits, dots, dashes or underscores: {', '.join(bad)}.")


def _check_parallelism_and_condition(v: dict, fail: Fail) -> None:
    if isinstance(v["max_parallelism"], bool) or not isinstance(v["max_parallelism"], int) or v["max_parallelism"] < 1:
        fail("max_parallelism", "At least 1.")
    if v["condition"] == Step.Condition.VARIABLE:
        if not (v["condition_variable"] or "").strip():
            fail("condition_variable", "Give the variable expression, e.g. #{RunThisStep}.")
    else:
        v["condition_variable"] = ""


def _script_source_and_teams(project: Project, v: dict, fail: Fail) -> None:
    """ScriptSource=Package names a file of the first package; responsible teams are teams of this space."""
    if v["script_source"] not in ("Inline", "Package"):
        fail("script_source", "Choose Inline or Package.")
    v["script_file_name"] = (v["script_file_name"] or "").strip().replace("\\", "/")
    if v["script_source"] == "Package" and v["action_type"] == Step.ActionType.SCRIPT:
        if not v["packages"]:
            fail("packages", "A script from a package needs a referenced package.")
        if (
            not v["script_file_name"]
            or ".." in v["script_file_name"].split("/")
            or v["script_file_name"].startswith("/")
        ):
            fail("script_file_name", "Give the script's path inside the package, e.g. scripts/deploy.sh.")
    else:
        v["script_source"], v["script_file_name"] = "Inline", ""
    teams = [str(t) for t in v["responsible_teams"] or []]
    known = {t.octopus_id for t in Team.objects.filter(Q(space=project.space) | Q(space__isnull=True))}
    if unknown := [t for t in teams if t not in known]:
        fail("responsible_teams", f"No such team in {project.space.name}: {', '.join(unknown)}.")
    v["responsible_teams"] = teams if v["action_type"] == Step.ActionType.MANUAL else []


def bump_process_version(project: Project, runbook: Runbook | None) -> None:
    """Every change to a process raises its Version: the API's optimistic concurrency compares it."""
    if runbook is not None:
        Runbook.objects.filter(pk=runbook.pk).update(process_version=F("process_version") + 1)
    else:
        Project.objects.filter(pk=project.pk).update(process_version=F("process_version") + 1)


def step_where(step: Step) -> str:
    return (
        f"the runbook {step.runbook.name} of {step.project.name}"
        if step.runbook_id
        else f"the deployment process of {step.project.name}"
    )


@transaction.atomic
def save_step(
    *, actor: User, project: Project, step: Step | None = None, runbook: Runbook | None = None, **values
) -> Step:
    """Add a step (step None) to the project's deployment process, or to `runbook`'s; or change `step`."""
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    if runbook is not None and runbook.project_id != project.pk:
        raise ValidationError(f"{runbook.name} is not a runbook of {project.name}.")
    if step is not None:
        step = Step.objects.select_for_update().get(pk=step.pk, project=project)
        runbook = step.runbook
    values = _step_values(project, runbook, values, step.pk if step else None)
    before = snapshot(step, STEP_FIELDS) if step else {}
    if step is None:
        order = (Step.objects.filter(project=project, runbook=runbook).aggregate(m=Max("sort_order"))["m"] or 0) + 1
        step = Step(project=project, runbook=runbook, sort_order=order)
    for field in STEP_FIELDS:
        setattr(step, field, values[field])
    step.save()
    bump_process_version(project, runbook)
    record_saved(
        actor,
        step,
        before,
        STEP_FIELDS,
        space=project.space,
        message=f"Step {step.name} of {step_where(step)} was {'changed' if before else 'added'}",
    )
    return step


@transaction.atomic
def reorder_steps(*, actor: User, project: Project, runbook: Runbook | None = None, ordered_ids: list[int]) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=project.space)
    ordered = reorder(Step.objects.filter(project=project, runbook=runbook), ordered_ids, "step of the process")
    bump_process_version(project, runbook)
    where = f"the runbook {runbook.name} of {project.name}" if runbook else f"the deployment process of {project.name}"
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document_type="DeploymentProcess",
        space=project.space,
        message=f"Steps of {where} reordered: " + ", ".join(s.name for s in ordered),
    )


@transaction.atomic
def delete_step(*, actor: User, step: Step) -> None:
    require_permission(actor, Permission.PROCESS_EDIT, space=step.project.space)
    record_event(
        actor=actor,
        category=Event.Category.DELETED,
        document=step,
        space=step.project.space,
        message=f"Step {step.name} of {step_where(step)} was deleted",
    )
    step.delete()
    bump_process_version(step.project, step.runbook)
