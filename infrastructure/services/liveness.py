"""Liveness in seconds (DESIGN.md "Churn and faults"): what the server learns about a worker between
its scheduled health checks.

1. Polling workers: the agent's open long poll is its heartbeat, a presence key in Redis that the
   polling endpoint refreshes every second (no database write per poll). `sweep_presence` runs every
   two seconds: an enabled polling worker without presence becomes Unavailable with the reason; one
   that is present again while Unavailable or Unknown is checked at once.
2. Listening and SSH workers: a failed call (from a step or a check) makes the worker Unavailable at
   once and schedules quick re-checks with backoff (RECHECK_BACKOFF, capped by the policy's interval).
3. The database changes only when a status does; every write goes through `health.record_health`,
   which refuses a result older than the one it holds (compare-and-set on the check's start time).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.db import close_old_connections, connection
from django.utils import timezone

from infrastructure.models import MachinePolicy, Worker
from infrastructure.transports.polling import PRESENCE_TTL, presence_key
from portal.redis import redis_client

log = logging.getLogger(__name__)

RECHECK_BACKOFF = (5, 15, 60, 300, 900)  # seconds after a failure, then the policy's interval
SWEEP_LOCK_SECONDS = 2
LIVE = (Worker.HealthStatus.HEALTHY, Worker.HealthStatus.HAS_WARNINGS, Worker.HealthStatus.UNHEALTHY)
DOWN = (Worker.HealthStatus.UNAVAILABLE, Worker.HealthStatus.UNKNOWN)


def recheck_delay(attempt: int, interval: int) -> int:
    """Seconds until the next check of a worker found unreachable `attempt` times in a row."""
    return min(RECHECK_BACKOFF[min(attempt, len(RECHECK_BACKOFF) - 1)], interval)


def absent_reason() -> str:
    return (f"The polling tentacle's connection has been gone for {PRESENCE_TTL}s: it is not polling the server "
            "(stopped, restarted or cut off).")


def present_subscriptions(subscriptions: list[str]) -> set[str]:
    if not subscriptions:
        return set()
    pipe = redis_client().pipeline(transaction=False)
    for subscription in subscriptions:
        pipe.exists(presence_key(subscription))
    return {s for s, there in zip(subscriptions, pipe.execute(), strict=True) if there}


def mark_worker_unreachable(*, worker: Worker, reason: str, observed_at: datetime | None = None) -> Worker:
    """A call to the worker failed before anything ran: Unavailable now, re-checked in seconds."""
    from infrastructure.services.health import record_health  # health imports this module

    observed_at = observed_at or timezone.now()
    return record_health(worker=worker, status=Worker.HealthStatus.UNAVAILABLE, summary=reason, started=observed_at,
                         log_text=f"{observed_at:%Y-%m-%d %H:%M:%S} {reason}\nResult: Unavailable.", capabilities=None)


def sweep_presence(*, check=None) -> dict[str, int]:
    """Presence into health for every enabled polling worker. `check(worker_id)` checks a worker that
    came back; without it, such a worker is made due so the next health-check sweep takes it."""
    client = redis_client()
    # One sweeper at a time across server nodes and endpoints.
    if not client.set("reef:liveness:sweep", 1, nx=True, ex=SWEEP_LOCK_SECONDS):
        return {"absent": 0, "returned": 0}
    observed_at = timezone.now()
    rows = list(Worker.objects.filter(communication_style=Worker.CommunicationStyle.POLLING, is_disabled=False)
                .values_list("pk", "uri", "health_status"))
    subscriptions = {pk: uri.removeprefix("poll://").rstrip("/") for pk, uri, _ in rows}
    present = present_subscriptions(list(subscriptions.values()))
    absent = [pk for pk, _, status in rows if status in LIVE and subscriptions[pk] not in present]
    absent += [pk for pk, _, status in rows if status == Worker.HealthStatus.UNKNOWN and subscriptions[pk] not in present]
    returned = [pk for pk, _, status in rows if status in DOWN and subscriptions[pk] in present]
    for worker in Worker.objects.filter(pk__in=absent):
        mark_worker_unreachable(worker=worker, reason=absent_reason(), observed_at=observed_at)
    if returned:
        if check is None:
            Worker.objects.filter(pk__in=returned).update(next_health_check=observed_at)
        else:
            for pk in returned:
                check(pk)
    return {"absent": len(absent), "returned": len(returned)}


def claim_check(worker_id: int) -> bool:
    """Claims a worker's check by compare-and-set on `next_health_check` (as the sweep does), so a
    returning agent is checked once, not by this thread and a sweep at the same time."""
    from infrastructure.services.health import next_scheduled_check  # health imports this module

    worker = Worker.objects.select_related("machine_policy").filter(pk=worker_id).first()
    if worker is None:
        return False
    return bool(Worker.objects.filter(pk=worker_id, next_health_check=worker.next_health_check).update(
        next_health_check=next_scheduled_check(worker.machine_policy)))


class PresenceSweeper:
    """The polling endpoint's liveness thread: sweeps presence and checks returning agents at once
    (a few at a time, each worker once), in this process, so recovery takes seconds whatever Celery
    is busy with."""

    def __init__(self, concurrency: int = 8):
        self.concurrency = concurrency
        self.lock = threading.Lock()
        self.checking: set[int] = set()

    def __call__(self) -> None:
        try:
            sweep_presence(check=self.check)
        finally:
            close_old_connections()

    def check(self, worker_id: int) -> None:
        with self.lock:
            if worker_id in self.checking or len(self.checking) >= self.concurrency:
                return  # the next sweep takes it
            self.checking.add(worker_id)
        if not claim_check(worker_id):
            with self.lock:
                self.checking.discard(worker_id)
            return  # a health-check sweep has it
        # Daemon threads: a check in flight must not hold up the endpoint's exit.
        threading.Thread(target=self._check, args=(worker_id,), name="liveness-check", daemon=True).start()

    def _check(self, worker_id: int) -> None:
        from infrastructure.services.health import check_worker_health  # health imports this module

        try:
            check_worker_health(worker_id)
        except Worker.DoesNotExist:
            pass
        except Exception:  # noqa: BLE001 - the next sweep tries again
            log.exception("checking returning worker %s failed", worker_id)
        finally:
            with self.lock:
                self.checking.discard(worker_id)
            connection.close()


CHECK_FIELDS = {"health_check_type", "bash_health_check_script"}


def reschedule_health_checks(*, policy: MachinePolicy, changed: set[str]) -> int:
    """A machine policy change applies at once: a changed check is run now, a changed interval
    recomputes each worker's next check from its last one."""
    now = timezone.now()
    workers = Worker.objects.filter(machine_policy=policy, is_disabled=False)
    if changed & CHECK_FIELDS:
        return workers.update(next_health_check=now, recheck_attempt=0)
    if "health_check_interval" not in changed:
        return 0
    count = 0
    for worker in workers.only("pk", "last_health_check", "next_health_check", "recheck_attempt"):
        if worker.recheck_attempt:
            delay = recheck_delay(worker.recheck_attempt - 1, policy.health_check_interval)
        else:
            delay = policy.health_check_interval
        due = max(now, (worker.last_health_check or now) + timedelta(seconds=delay))
        count += Worker.objects.filter(pk=worker.pk, next_health_check=worker.next_health_check).update(next_health_check=due)
    return count
