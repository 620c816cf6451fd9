"""Health checks: connect through the worker's transport, run the policy's script, record the result.

1. A periodic sweep (Celery beat, every few seconds) claims due workers by compare-and-set on
   `next_health_check` (with jitter, so a fleet that comes back at once does not storm the server).
   Polling workers whose agent is not connected (no presence, services/liveness.py) are marked
   Unavailable without queueing a request; the others are checked concurrently, at most
   CONCURRENT_CHECKS per sweep, so a sweep never holds its Celery process longer than the slowest
   check's deadline, however many workers are dead.
2. Each check has a deadline: the policy's connect timeout plus the script timeout. Retries stop there.
3. Status: unreachable → Unavailable (with the reason) and quick re-checks with backoff (5 s, 15 s,
   60 s, … up to the policy's interval), each one attempt: the policy's connection retries are spent
   once, when the worker is found down, not again at every re-check; script exit code ≠ 0 → Unhealthy; warnings →
   HasWarnings;
   otherwise Healthy. A result never overwrites one from a check that started later. An audit event
   is written only when the status changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from infrastructure.models import MachinePolicy, Worker
from infrastructure.services.liveness import absent_reason, present_subscriptions, recheck_delay
from infrastructure.transports import ScriptService, TransportError, transport_for
from infrastructure.transports.envelope import EnvelopeTransport
from infrastructure.transports.polling import PRESENCE_TTL
from portal.models import Event, User
from portal.redis import redis_client
from portal.services.audit import record_event
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import claim_server_task, finish_server_task, keeping_alive, queue_server_task

log = logging.getLogger(__name__)
SWEEP_BATCH = 1000
CONCURRENT_CHECKS = 32
SCRIPT_TIMEOUT = 300
WARNING_MARK = "##octopus[stdout-warning]"


def _interpret(result: dict) -> tuple[str, str, list[str]]:
    """(status, summary, log lines) from a transport's health answer."""
    capabilities = result["Capabilities"]
    lines = [
        (
            f"Connected. {capabilities.get('OperatingSystem', 'Unknown OS')} {capabilities.get('Architecture', '')}"
        ).strip(),
        "Shells: " + (", ".join(capabilities.get("Shells") or []) or "none"),
        "Tools on PATH: " + (", ".join(sorted(capabilities.get("Tools") or {})) or "none"),
    ]
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


def check_deadline(policy: MachinePolicy) -> float:
    """Seconds a check of a worker under this policy may take, retries included."""
    return policy.connect_timeout + SCRIPT_TIMEOUT


def _connects_soon(subscription: str) -> bool:
    """Whether the polling agent is connected, or connects within PRESENCE_TTL seconds (one just started)."""
    give_up = time.monotonic() + PRESENCE_TTL
    while not present_subscriptions([subscription]):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.2)
    return True


def check_worker_health(worker_id: int) -> Worker:
    """Checks one worker, unless a check of it is already running (on any node, such as the polling
    endpoint's check of an agent that just came back): then that check's outcome is the answer."""
    worker = Worker.objects.select_related("machine_policy", "account", "space").get(pk=worker_id)
    # Under the node's prefix ("reef"): test runs sharing one Redis have workers with the same ids.
    key = f"{settings.REEF_STREAM_PREFIX}:health:checking:{worker.pk}"
    deadline = int(check_deadline(worker.machine_policy)) + 5
    if not redis_client().set(key, 1, nx=True, ex=deadline):
        ends = time.monotonic() + deadline
        while redis_client().exists(key) and time.monotonic() < ends:
            time.sleep(0.1)
        worker.refresh_from_db()
        return worker
    try:
        return _check(worker)
    finally:
        redis_client().delete(key)


def _check(worker: Worker) -> Worker:
    policy = worker.machine_policy
    script = (
        policy.bash_health_check_script if policy.health_check_type == MachinePolicy.HealthCheckType.RUN_SCRIPT else ""
    )
    started = timezone.now()
    log_lines = [f"{started:%Y-%m-%d %H:%M:%S} Checking health of {worker.name} at {worker.endpoint_uri}"]
    capabilities = None
    if worker.subscription_id and not _connects_soon(worker.subscription_id):
        # Nobody would collect a request: say so now instead of waiting out the queue timeout.
        summary = absent_reason()
        log_lines += [summary, "Result: Unavailable."]
        return record_health(
            worker=worker,
            status=Worker.HealthStatus.UNAVAILABLE,
            summary=summary,
            log_text="\n".join(log_lines),
            capabilities=None,
            started=started,
        )
    service = transport_for(worker, on_retry=log_lines.append)
    if worker.health_status == Worker.HealthStatus.UNAVAILABLE and isinstance(service, EnvelopeTransport):
        # A re-check of a worker already found unreachable tries once: its backoff (5 s, 15 s, 60 s, …) is
        # the retrying, and the policy's connection retries were spent when it was found down. Otherwise
        # a dead worker would cost the policy's retries again at every re-check.
        service.retry_count = 0
    try:
        # The transport retries connections as the policy says; each retry is a line of this log.
        result = run_health_check(service, script)
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
    return record_health(
        worker=worker,
        status=status,
        summary=summary,
        log_text="\n".join(log_lines),
        capabilities=capabilities,
        started=started,
    )


@transaction.atomic
def record_health(
    *,
    worker: Worker,
    status: str,
    summary: str,
    log_text: str,
    capabilities: dict | None,
    started: datetime | None = None,
) -> Worker:
    """Store a check's result, unless a check (or liveness observation) that started later already
    stored one: compare-and-set on the start time. Schedules the next check: the policy's interval,
    or quick re-checks with backoff while the worker is Unavailable."""
    now = timezone.now()
    started = started or now
    current = Worker.objects.select_for_update().select_related("machine_policy").get(pk=worker.pk)
    if current.health_check_started is not None and started < current.health_check_started:
        log.info(
            "refused a stale health result for %s (%s, from a check started %s; the stored one started %s)",
            current.name,
            status,
            started,
            current.health_check_started,
        )
        return current
    previous = current.health_status
    current.health_status, current.status_summary, current.health_check_log = (
        status,
        summary[:2000],
        log_text[-100_000:],
    )
    current.last_health_check, current.health_check_started = now, started
    if capabilities is not None:
        current.capabilities = capabilities
    interval = current.machine_policy.health_check_interval
    if status == Worker.HealthStatus.UNAVAILABLE:
        current.unavailable_since = current.unavailable_since or now
        current.next_health_check = now + timedelta(seconds=recheck_delay(current.recheck_attempt, interval))
        current.recheck_attempt += 1
    else:
        current.unavailable_since = None
        if current.recheck_attempt or current.next_health_check is None or current.next_health_check <= now:
            current.next_health_check = now + timedelta(seconds=interval + random.uniform(0, interval * 0.1))
        current.recheck_attempt = 0
    current.save(
        update_fields=[
            "health_status",
            "status_summary",
            "health_check_log",
            "last_health_check",
            "capabilities",
            "unavailable_since",
            "health_check_started",
            "next_health_check",
            "recheck_attempt",
        ]
    )
    if previous != status:
        healthy = status in (Worker.HealthStatus.HEALTHY, Worker.HealthStatus.HAS_WARNINGS)
        record_event(
            actor=None,
            category=Event.Category.MACHINE_HEALTHY if healthy else Event.Category.MACHINE_UNAVAILABLE,
            document=current,
            message=f"Worker {current.name} is now {status} (was {previous}): {summary[:300]}",
            changes={"health_status": [previous, status]},
        )
    return current


@transaction.atomic
def request_health_check(*, actor: User, worker: Worker):
    """Check health now (the page's button): a Health server task with a log, queued to Celery."""
    from infrastructure.tasks import run_health_check_task  # the Celery tasks import this module

    return queue_server_task(
        space=worker.space,
        name="Health",
        description=f"Check health of {worker.name}",
        arguments={"WorkerIds": [worker.octopus_id]},
        created_by=actor,
        celery_task=run_health_check_task,
    )


def run_health_check_server_task(task_id: int) -> None:
    """Runs a Health task: checks each worker it names and copies each check's log into the task's log."""
    task = claim_server_task(task_id)
    if task is None:
        return  # already claimed: a redelivered message
    with keeping_alive(task.pk):
        _run_health_check(task)


def _run_health_check(task) -> None:
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


def next_scheduled_check(policy: MachinePolicy, now=None):
    """The policy's interval from now, with up to 10% jitter so a fleet checked together spreads out."""
    interval = policy.health_check_interval
    return (now or timezone.now()) + timedelta(seconds=interval + random.uniform(0, interval * 0.1))


def claim_due_workers(now=None, limit: int = SWEEP_BATCH, polling_absent: set[int] | None = None) -> list[int]:
    """Workers whose check is due, each claimed by compare-and-set so overlapping sweeps never double-check."""
    now = now or timezone.now()
    claimed = []
    due = (
        Worker.objects.filter(is_disabled=False)
        .filter(Q(next_health_check__isnull=True) | Q(next_health_check__lte=now))
        .select_related("machine_policy")
        .order_by("next_health_check")[:limit]
    )
    for worker in due:
        interval = worker.machine_policy.health_check_interval
        # Jitter up to 10% spreads a fleet that was checked together.
        next_check = now + timedelta(seconds=interval + random.uniform(0, interval * 0.1))
        if Worker.objects.filter(pk=worker.pk, next_health_check=worker.next_health_check).update(
            next_health_check=next_check
        ):
            claimed.append(worker.pk)
    return claimed


def _due_network_checks(now, slots: int, rows: int = SWEEP_BATCH) -> tuple[list[int], int]:
    """Claims up to `slots` workers that need a real check, looking at the first `rows` due. Polling
    workers whose agent is not connected are settled on the way, in bulk and without a request:
    their presence says enough."""
    due = list(
        Worker.objects.filter(is_disabled=False)
        .filter(Q(next_health_check__isnull=True) | Q(next_health_check__lte=now))
        .select_related("machine_policy")
        .order_by("next_health_check")[:rows]
    )
    polling = {w.pk: w.subscription_id for w in due if w.subscription_id}
    present = present_subscriptions(list(polling.values()))
    claimed, settled = [], 0
    for worker in due:
        absent = worker.pk in polling and polling[worker.pk] not in present
        if not absent and len(claimed) >= slots:
            continue
        interval = worker.machine_policy.health_check_interval
        if absent and worker.health_status == Worker.HealthStatus.UNAVAILABLE:
            # Already known down: only the next look is scheduled (no database write per look otherwise).
            next_check = now + timedelta(seconds=recheck_delay(max(worker.recheck_attempt - 1, 0), interval))
        else:
            next_check = now + timedelta(seconds=interval + random.uniform(0, interval * 0.1))
        if not Worker.objects.filter(pk=worker.pk, next_health_check=worker.next_health_check).update(
            next_health_check=next_check
        ):
            continue  # another sweep took it
        if absent:
            settled += 1
            if worker.health_status != Worker.HealthStatus.UNAVAILABLE:
                record_health(
                    worker=worker,
                    status=Worker.HealthStatus.UNAVAILABLE,
                    summary=absent_reason(),
                    capabilities=None,
                    log_text=f"{now:%Y-%m-%d %H:%M:%S} {absent_reason()}\nResult: Unavailable.",
                    started=now,
                )
        else:
            claimed.append(worker.pk)
    return claimed, settled


BACKGROUND_NICE = 10  # health checks yield the CPU to deployments (the task runner stays at 0)


def run_at_background_priority() -> None:
    """Lowers the calling thread's CPU priority (Linux keeps a nice value per thread), so a sweep of a
    large fleet never delays a deployment's dispatch or its log lines on a busy node. Elsewhere a no-op."""
    # Not Linux, or not allowed: the check runs at the normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def _check_in_thread(worker_id: int) -> None:
    try:
        check_worker_health(worker_id)
    except Worker.DoesNotExist:
        pass  # deleted meanwhile
    except Exception:  # noqa: BLE001 - one check's surprise must not end the sweep
        log.exception("health check of worker %s failed", worker_id)
    finally:
        connection.close()  # this thread's own connection


def delete_long_unavailable_workers(now=None) -> list[str]:
    """Machine policies that say "delete machines unavailable for longer than…" are applied here."""
    now = now or timezone.now()
    deleted = []
    candidates = Worker.objects.filter(
        health_status=Worker.HealthStatus.UNAVAILABLE,
        unavailable_since__isnull=False,
        machine_policy__delete_behavior=MachinePolicy.DeleteBehavior.DELETE_UNAVAILABLE,
    ).select_related("machine_policy")
    for worker in candidates:
        if worker.unavailable_since + timedelta(seconds=worker.machine_policy.delete_after) <= now:
            with transaction.atomic():
                record_event(
                    actor=None,
                    category=Event.Category.DELETED,
                    document=worker,
                    message=f"Worker {worker.name} deleted: "
                    f"unavailable since {worker.unavailable_since:%Y-%m-%d %H:%M} "
                    f"(machine policy {worker.machine_policy.name})",
                )
                worker.delete()
            deleted.append(worker.name)
    return deleted


def run_due_health_checks() -> int:
    """One sweep: settle absent polling workers, and run real checks side by side, CONCURRENT_CHECKS
    at a time. A slot that frees up takes another due worker only if that check's deadline still
    ends within the horizon (the slowest deadline of the first batch), so the sweep never holds its
    Celery process longer than that, however many workers are due or dead. A check still running at
    the horizon (a hung transport) finishes in the background; its worker stays claimed."""
    delete_long_unavailable_workers()
    began = time.monotonic()
    claimed, settled = _due_network_checks(timezone.now(), CONCURRENT_CHECKS)
    if not claimed:
        return settled
    deadlines = _deadlines(claimed)
    horizon = began + max(deadlines.values())
    pool = ThreadPoolExecutor(
        max_workers=CONCURRENT_CHECKS, thread_name_prefix="health-check", initializer=run_at_background_priority
    )
    running = {pool.submit(_check_in_thread, pk) for pk in claimed}
    total = len(claimed) + settled
    while running:
        done, running = wait(running, timeout=max(0.0, horizon - time.monotonic()), return_when=FIRST_COMPLETED)
        if not done:
            log.warning(
                "%d health check(s) passed the sweep's horizon; leaving them to finish in the background", len(running)
            )
            break
        # A slot or two at a time: look at a few due rows only (this runs once per finished check).
        more, settled = _due_network_checks(timezone.now(), len(done), rows=max(16, 4 * len(done)))
        total += settled
        fits = [pk for pk, seconds in _deadlines(more).items() if time.monotonic() + seconds <= horizon]
        Worker.objects.filter(pk__in=set(more) - set(fits)).update(next_health_check=timezone.now())  # the next sweep's
        running |= {pool.submit(_check_in_thread, pk) for pk in fits}
        total += len(fits)
    pool.shutdown(wait=False)
    return total


def _deadlines(worker_ids: list[int]) -> dict[int, float]:
    rows = Worker.objects.filter(pk__in=worker_ids).select_related("machine_policy")
    return {w.pk: check_deadline(w.machine_policy) for w in rows}
