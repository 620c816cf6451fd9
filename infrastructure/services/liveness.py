"""Liveness in seconds (DESIGN.md "Churn and faults"): what the server learns about a worker between
its scheduled health checks.

1. Polling workers: the agent's open long poll is its heartbeat, a presence key in Redis that the
   polling endpoint refreshes every second (no database write per poll). `sweep_presence` runs every
   two seconds: an enabled polling worker without presence becomes Unavailable with the reason; one
   that is present again while Unavailable or Unknown is checked at once.
2. Listening and SSH workers: a failed call (from a step or a check) makes the worker Unavailable at
   once and schedules quick re-checks with backoff (RECHECK_BACKOFF, capped by the policy's interval).
   Between calls, `probe_worker_endpoints` (beat, every 5 s) opens a plain TCP connection to each one's
   port (for SSH, until sshd's banner), all at once and bounded: a refused connect (twice in a row when it only timed
   out) is the same
   news as a failed call; a port that answers again makes the worker due for a real check at once.
3. The database changes only when a status does; every write goes through `health.record_health`,
   which refuses a result older than the one it holds (compare-and-set on the check's start time).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlparse

from django.conf import settings
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


def _key(name: str) -> str:
    """Under the node's prefix ("reef"), so test runs sharing one Redis keep apart."""
    return f"{settings.REEF_STREAM_PREFIX}:liveness:{name}"


def recheck_delay(attempt: int, interval: int) -> int:
    """Seconds until the next check of a worker found unreachable `attempt` times in a row."""
    return min(RECHECK_BACKOFF[min(attempt, len(RECHECK_BACKOFF) - 1)], interval)


def absent_reason() -> str:
    return (
        f"The polling tentacle's connection has been gone for {PRESENCE_TTL}s: it is not polling the server "
        "(stopped, restarted or cut off)."
    )


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
    return record_health(
        worker=worker,
        status=Worker.HealthStatus.UNAVAILABLE,
        summary=reason,
        started=observed_at,
        log_text=f"{observed_at:%Y-%m-%d %H:%M:%S} {reason}\nResult: Unavailable.",
        capabilities=None,
    )


def sweep_presence(*, check=None) -> dict[str, int]:
    """Presence into health for every enabled polling worker. `check(worker_id)` checks a worker that
    came back; without it, such a worker is made due so the next health-check sweep takes it."""
    client = redis_client()
    # One sweeper at a time across server nodes and endpoints.
    if not client.set(_key("sweep"), 1, nx=True, ex=SWEEP_LOCK_SECONDS):
        return {"absent": 0, "returned": 0}
    observed_at = timezone.now()
    rows = list(
        Worker.objects.filter(communication_style=Worker.CommunicationStyle.POLLING, is_disabled=False).values_list(
            "pk", "uri", "health_status"
        )
    )
    subscriptions = {pk: uri.removeprefix("poll://").rstrip("/") for pk, uri, _ in rows}
    present = present_subscriptions(list(subscriptions.values()))
    absent = [pk for pk, _, status in rows if status in LIVE and subscriptions[pk] not in present]
    absent += [
        pk for pk, _, status in rows if status == Worker.HealthStatus.UNKNOWN and subscriptions[pk] not in present
    ]
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
    return bool(
        Worker.objects.filter(pk=worker_id, next_health_check=worker.next_health_check).update(
            next_health_check=next_scheduled_check(worker.machine_policy)
        )
    )


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
        from infrastructure.services.health import (  # health imports this module
            check_worker_health,
            run_at_background_priority,
        )

        run_at_background_priority()  # this thread only: the endpoint's request threads keep theirs
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
        count += Worker.objects.filter(pk=worker.pk, next_health_check=worker.next_health_check).update(
            next_health_check=due
        )
    return count


# Listening and SSH workers: the TCP probe -----------------------------------------------------------

PROBE_TIMEOUT = 2.0  # seconds a connect may take (loopback and LAN answer in milliseconds)
PROBE_DEADLINE = 4.5  # the connects of a round end by then (beat sends one every 5 s)
PROBE_CONCURRENCY = 512  # connects in flight at once: file descriptors, not threads
PROBE_TIMEOUT_STRIKES = 2  # a refusal is proof; a timeout (a lost SYN?) must happen twice in a row


def probe_endpoint(worker: Worker) -> tuple[str, int] | None:
    """(host, port) the server connects to for a listening or SSH worker; None for other kinds."""
    if worker.communication_style == Worker.CommunicationStyle.SSH:
        return (worker.host, worker.port or 22) if worker.host else None
    if worker.communication_style == Worker.CommunicationStyle.LISTENING:
        try:
            uri = urlparse(worker.uri)
            return (uri.hostname, uri.port or 10933) if uri.hostname else None
        except ValueError:  # a malformed port
            return None
    return None


async def _connect(address: tuple[str, int], ssh: bool, limit: asyncio.Semaphore) -> tuple[str, str] | None:
    """None when the port accepted a connection (and, for SSH, sshd sent its banner), else (kind, reason):
    kind is "refused" or "timeout"."""
    async with limit:
        try:
            return await asyncio.wait_for(_exchange(address, ssh), PROBE_TIMEOUT)
        except TimeoutError:
            return "timeout", f"no answer to a TCP connection within {PROBE_TIMEOUT:g}s"
        except OSError as error:
            return "refused", error.strerror or str(error) or type(error).__name__


async def _exchange(address: tuple[str, int], ssh: bool) -> tuple[str, str] | None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        if ssh:
            # Banners exchanged, then closed: sshd logs one "closed [preauth]" line, not a key-exchange error.
            if not await reader.read(256):  # any bytes: sshd is there (its banner may follow other lines)
                return "refused", "the connection was closed before sshd's banner"
            writer.write(b"SSH-2.0-ReefLivenessProbe\r\n")
            await writer.drain()
        return None
    finally:
        writer.close()  # nothing more sent: a listening agent sees a connection closed before its handshake


async def _probe_all(addresses: dict[int, tuple[str, int]], ssh: set[int]) -> dict[int, tuple[str, str] | None]:
    """Every address at once, PROBE_CONCURRENCY in flight; what is not done by PROBE_DEADLINE is left
    out of the answer (no news), so a round is bounded whatever number of hosts swallow SYNs."""
    limit = asyncio.Semaphore(PROBE_CONCURRENCY)
    tasks = {asyncio.ensure_future(_connect(address, pk in ssh, limit)): pk for pk, address in addresses.items()}
    if not tasks:
        return {}
    done, pending = await asyncio.wait(tasks, timeout=PROBE_DEADLINE)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return {tasks[task]: task.result() for task in done}


def probe_worker_endpoints() -> dict[str, int]:
    """One round of the TCP probe over every enabled listening and SSH worker (module docstring, 2).

    1. One round at a time across nodes (a Redis lock); every endpoint probed at once, bounded.
    2. Refused (or timed out twice in a row): a worker not yet Unavailable is marked so with the reason
       (quick re-checks follow, as after a failed call). Consecutive failures are counted in Redis.
    3. Answering again after a failed probe while Unavailable or Unknown: due for a real check now, so
       it is Healthy within seconds, not at the next backoff step.
    The database is written only for those two changes, never per probe."""
    client = redis_client()
    lock, state = _key("probe:lock"), _key("probe:failing")  # failing: worker pk -> failed probes in a row
    if not client.set(lock, 1, nx=True, ex=int(PROBE_DEADLINE) + 5):
        return {"probed": 0, "down": 0, "returned": 0}
    try:
        workers = list(
            Worker.objects.filter(
                is_disabled=False,
                communication_style__in=(Worker.CommunicationStyle.LISTENING, Worker.CommunicationStyle.SSH),
            ).only("pk", "communication_style", "uri", "host", "port", "health_status")
        )
        addresses = {w.pk: address for w in workers if (address := probe_endpoint(w))}
        order = list(addresses)
        random.shuffle(order)  # a deadline that cuts a round short cuts a different tail next time
        observed_at = timezone.now()
        ssh = {w.pk for w in workers if w.communication_style == Worker.CommunicationStyle.SSH}
        results = _run_apart(_probe_all({pk: addresses[pk] for pk in order}, ssh))
        failing_before = {int(pk): int(n) for pk, n in client.hgetall(state).items()}
        failing = {pk: failing_before.get(pk, 0) + 1 for pk, result in results.items() if result is not None}
        # Not probed this round (cut by the deadline): keep their count, no news either way.
        failing.update({pk: n for pk, n in failing_before.items() if pk in addresses and pk not in results})
        pipe = client.pipeline()
        pipe.delete(state)
        if failing:
            pipe.hset(state, mapping=failing)
            pipe.expire(state, 60)  # stale counts vanish if probing stops
        pipe.execute()

        by_pk = {w.pk: w for w in workers}
        down = 0
        for pk, result in results.items():
            if result is None or by_pk[pk].health_status == Worker.HealthStatus.UNAVAILABLE:
                continue
            kind, reason = result
            if kind == "timeout" and failing[pk] < PROBE_TIMEOUT_STRIKES:
                continue
            worker = by_pk[pk]
            host, port = addresses[pk]
            reason = (
                f"Could not reach {worker.endpoint_uri}: {reason} (found by the liveness probe of "
                f"{host}:{port}, with no call in flight)."
            )
            mark_worker_unreachable(worker=worker, observed_at=observed_at, reason=reason)
            down += 1
        returned = [
            pk
            for pk, result in results.items()
            if result is None and pk in failing_before and by_pk[pk].health_status in DOWN
        ]
        if returned:
            Worker.objects.filter(pk__in=returned, health_status__in=DOWN).filter(
                next_health_check__gt=observed_at
            ).update(next_health_check=observed_at)
        return {"probed": len(results), "down": down, "returned": len(returned)}
    finally:
        client.delete(lock)


def _run_apart(coroutine):
    """asyncio.run, also for a caller whose thread already runs an event loop (Playwright's sync API does):
    the round then gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1, thread_name_prefix="liveness-probe") as pool:
        return pool.submit(asyncio.run, coroutine).result()
