"""Health checks: connect through the worker's transport, run the policy's script, record the result.

1. A periodic sweep claims due workers by compare-and-set on `next_health_check` (with jitter, so a
   fleet that comes back at once does not storm the server) and checks them concurrently.
2. Each check has the policy's connect timeout and retries; a hung script is bounded by its own timeout.
3. Status: unreachable → Unavailable (with the reason); script exit code ≠ 0 → Unhealthy;
   warnings → HasWarnings; otherwise Healthy. An audit event is written only when the status changes.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from infrastructure.models import MachinePolicy, Worker
from infrastructure.transports import ScriptService, TransportError, transport_for
from portal.models import Event, User
from portal.services.audit import record_event

log = logging.getLogger(__name__)
SWEEP_BATCH = 200
CONCURRENT_CHECKS = 16
SCRIPT_TIMEOUT = 300
WARNING_MARK = "##octopus[stdout-warning]"


def _interpret(result: dict) -> tuple[str, str, list[str]]:
    """(status, summary, log lines) from a transport's health answer."""
    capabilities = result["Capabilities"]
    lines = [f"Connected. {capabilities.get('OperatingSystem', 'Unknown OS')} {capabilities.get('Architecture', '')}".strip(),
             "Shells: " + (", ".join(capabilities.get("Shells") or []) or "none"),
             "Tools on PATH: " + (", ".join(sorted(capabilities.get("Tools") or {})) or "none")]
    code = result.get("ScriptExitCode")
    warnings: list[str] = []
    if code is not None:
        lines.append("Health check script output:")
        in_warning = False
        for line in result.get("ScriptOutput", "").splitlines():
            if line == WARNING_MARK:
                in_warning = True
            elif line.startswith("##octopus["):
                in_warning = False
            else:
                lines.append(("WARNING: " if in_warning else "  ") + line)
                if in_warning:
                    warnings.append(line)
        lines.append(f"Health check script exited with code {code}.")
    if code not in (None, 0):
        return Worker.HealthStatus.UNHEALTHY, f"The health check script exited with code {code}.", lines
    if warnings:
        return Worker.HealthStatus.HAS_WARNINGS, f"Healthy, with warnings: {warnings[0]}", lines
    return Worker.HealthStatus.HEALTHY, "Healthy", lines


def run_health_check(service: ScriptService, script: str) -> dict:
    """Capabilities, then the policy's script if any: {Capabilities, ScriptExitCode, ScriptOutput}."""
    capabilities = service.health()
    result = {"Capabilities": capabilities, "ScriptExitCode": None, "ScriptOutput": ""}
    if script.strip():
        code, lines = service.run_script(script, "Bash", SCRIPT_TIMEOUT)
        output = []
        for line in lines:
            if line.get("Category") == "Warning":
                output += [WARNING_MARK, line.get("Text", ""), "##octopus[stdout-default]"]
            else:
                output.append(line.get("Text", ""))
        result.update(ScriptExitCode=code, ScriptOutput="\n".join(output))
    return result


def check_worker_health(worker_id: int) -> Worker:
    worker = Worker.objects.select_related("machine_policy", "account", "space").get(pk=worker_id)
    policy = worker.machine_policy
    script = policy.bash_health_check_script if policy.health_check_type == MachinePolicy.HealthCheckType.RUN_SCRIPT else ""
    started = timezone.now()
    log_lines = [f"{started:%Y-%m-%d %H:%M:%S} Checking health of {worker.name} at {worker.endpoint_uri}"]
    capabilities = None
    try:
        # The transport retries connections as the policy says; each retry is a line of this log.
        result = run_health_check(transport_for(worker, on_retry=log_lines.append), script)
    except TransportError as error:
        log_lines.append(str(error))
        status, summary = Worker.HealthStatus.UNAVAILABLE, str(error)
    except Exception as error:  # a bug or a surprise must not leave the worker's status stale
        log.exception("health check of %s failed", worker.name)
        status, summary = Worker.HealthStatus.UNAVAILABLE, f"The health check failed unexpectedly: {error}"
        log_lines.append(summary)
    else:
        status, summary, lines = _interpret(result)
        capabilities = result["Capabilities"]
        log_lines += lines
    log_lines.append(f"Result: {status}.")
    return record_health(worker=worker, status=status, summary=summary, log_text="\n".join(log_lines), capabilities=capabilities)


@transaction.atomic
def record_health(*, worker: Worker, status: str, summary: str, log_text: str, capabilities: dict | None) -> Worker:
    now = timezone.now()
    current = Worker.objects.select_for_update().get(pk=worker.pk)
    previous = current.health_status
    current.health_status, current.status_summary, current.health_check_log = status, summary[:2000], log_text[-100_000:]
    current.last_health_check = now
    if capabilities is not None:
        current.capabilities = capabilities
    if status == Worker.HealthStatus.UNAVAILABLE:
        current.unavailable_since = current.unavailable_since or now
    else:
        current.unavailable_since = None
    current.save(update_fields=["health_status", "status_summary", "health_check_log", "last_health_check",
                                "capabilities", "unavailable_since"])
    if previous != status:
        healthy = status in (Worker.HealthStatus.HEALTHY, Worker.HealthStatus.HAS_WARNINGS)
        record_event(actor=None, category=Event.Category.MACHINE_HEALTHY if healthy else Event.Category.MACHINE_UNAVAILABLE,
                     document=current, message=f"Worker {current.name} is now {status} (was {previous}): {summary[:300]}",
                     changes={"health_status": [previous, status]})
    return current


@transaction.atomic
def request_health_check(*, actor: User, worker: Worker):
    """Check health now (the page's button): a Health server task with a log, queued to Celery."""
    from deployments.services.tasks import queue_server_task
    from infrastructure.tasks import run_health_check_task

    return queue_server_task(space=worker.space, name="Health", description=f"Check health of {worker.name}",
                             arguments={"WorkerIds": [worker.octopus_id]}, created_by=actor, celery_task=run_health_check_task)


def run_health_check_server_task(task_id: int) -> None:
    """Runs a Health task: checks each worker it names and copies each check's log into the task's log."""
    from deployments.services.tasks import claim_server_task, keeping_alive

    task = claim_server_task(task_id)
    if task is None:
        return  # already claimed: a redelivered message
    with keeping_alive(task.pk):
        _run_health_check(task)


def _run_health_check(task) -> None:
    from deployments.services.tasks import TaskLog, finish_server_task

    task_log = TaskLog(task)
    problems, warnings = [], False
    for octopus_id in task.arguments.get("WorkerIds", []):
        worker = Worker.objects.filter(pk=Worker.pk_from_octopus_id(octopus_id) or 0, space=task.space).first()
        if worker is None:
            task_log.write(f"{octopus_id} no longer exists.", "Warning")
            warnings = True
            continue
        checked = check_worker_health(worker.pk)
        for line in checked.health_check_log.splitlines():
            task_log.write(line, "Warning" if line.startswith("WARNING:") else "Info")
        if checked.health_status == Worker.HealthStatus.HAS_WARNINGS:
            warnings = True
        elif checked.health_status != Worker.HealthStatus.HEALTHY:
            problems.append(f"{checked.name} is {checked.health_status}: {checked.status_summary}")
            task_log.write(problems[-1], "Error")
        task_log.flush()
    task_log.flush()
    if problems:
        finish_server_task(task=task, state="Failed", error_message="; ".join(problems), has_warnings=warnings)
    else:
        finish_server_task(task=task, state="Success", has_warnings=warnings)


def claim_due_workers(now=None, limit: int = SWEEP_BATCH) -> list[int]:
    """Workers whose check is due, each claimed by compare-and-set so overlapping sweeps never double-check."""
    now = now or timezone.now()
    claimed = []
    due = (Worker.objects.filter(is_disabled=False).filter(Q(next_health_check__isnull=True) | Q(next_health_check__lte=now))
           .select_related("machine_policy").order_by("next_health_check")[:limit])
    for worker in due:
        interval = worker.machine_policy.health_check_interval
        # Jitter up to 10% spreads a fleet that was checked together.
        next_check = now + timedelta(seconds=interval + random.uniform(0, interval * 0.1))
        if Worker.objects.filter(pk=worker.pk, next_health_check=worker.next_health_check).update(next_health_check=next_check):
            claimed.append(worker.pk)
    return claimed


def _check_in_thread(worker_id: int) -> None:
    try:
        check_worker_health(worker_id)
    except Worker.DoesNotExist:
        pass  # deleted meanwhile
    finally:
        close_old_connections()


def delete_long_unavailable_workers(now=None) -> list[str]:
    """Machine policies that say "delete machines unavailable for longer than…" are applied here."""
    now = now or timezone.now()
    deleted = []
    candidates = Worker.objects.filter(
        health_status=Worker.HealthStatus.UNAVAILABLE, unavailable_since__isnull=False,
        machine_policy__delete_behavior=MachinePolicy.DeleteBehavior.DELETE_UNAVAILABLE).select_related("machine_policy")
    for worker in candidates:
        if worker.unavailable_since + timedelta(seconds=worker.machine_policy.delete_after) <= now:
            with transaction.atomic():
                record_event(actor=None, category=Event.Category.DELETED, document=worker,
                             message=f"Worker {worker.name} deleted: unavailable since {worker.unavailable_since:%Y-%m-%d %H:%M} "
                                     f"(machine policy {worker.machine_policy.name})")
                worker.delete()
            deleted.append(worker.name)
    return deleted


def run_due_health_checks() -> int:
    delete_long_unavailable_workers()
    claimed = claim_due_workers()
    if claimed:
        with ThreadPoolExecutor(max_workers=min(CONCURRENT_CHECKS, len(claimed))) as pool:
            list(pool.map(_check_in_thread, claimed))
    return len(claimed)
