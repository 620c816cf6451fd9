"""Polling tentacles: the server cannot connect to them, so it queues requests in Redis for the
agent's subscription; the polling endpoint hands them to the agent and routes its answers back.

Keys: `reef:poll:<subscription>:requests` (a list of envelopes, oldest first),
`reef:poll:response:<request id>` (a list the waiting caller blocks on),
`reef:poll:<subscription>:connection` (counts the agent's long polls: only the newest takes requests),
`reef:poll:<subscription>:present` (the agent's presence: set while a long poll is open, expires
PRESENCE_TTL seconds after the connection is gone), and for delivery `reef:poll:<subscription>:unacked`
(a sorted set of StartScript ids handed out, by time) with `reef:poll:<subscription>:handed` (their
envelopes), cleared when the agent acknowledges them on its next poll.
"""

from __future__ import annotations

import json
import logging
import time

import redis

from infrastructure.transports import TransportError, WorkerUnreachable
from infrastructure.transports.envelope import EnvelopeTransport
from portal.redis import redis_client

NOTIFY_CHANNEL = "reef:poll:notify"
PRESENCE_TTL = 5  # seconds: a worker whose agent connection is gone this long is absent
log = logging.getLogger(__name__)


def presence_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:present"


def unacked_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:unacked"


def handed_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:handed"


def redelivered_key(request_id: str) -> str:
    return f"reef:poll:redelivered:{request_id}"


def is_present(subscription: str, client: redis.Redis | None = None) -> bool:
    return bool((client or redis_client()).exists(presence_key(subscription)))


def owner_key(request_id: str) -> str:
    return f"reef:poll:owner:{request_id}"


def requests_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:requests"


def connection_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:connection"


def response_key(request_id: str) -> str:
    return f"reef:poll:response:{request_id}"


class PollingTransport(EnvelopeTransport):
    def should_retry(self, error: TransportError, elapsed: float) -> bool:
        """A request that waited the policy's whole polling queue timeout unpicked is not queued again
        (that wait was the patience); a quick refusal, or an answer that went missing, is retried."""
        queue_timeout = self.worker.machine_policy.polling_request_queue_timeout
        return error.retryable and not (isinstance(error, WorkerUnreachable) and elapsed >= queue_timeout)

    def exchange(self, envelope: dict, timeout: float) -> dict:
        subscription = self.worker.subscription_id
        if not subscription:
            raise TransportError(f"{self.worker.name} has no polling subscription.")
        queue_timeout = self.worker.machine_policy.polling_request_queue_timeout
        envelope = {**envelope, "ExpiresInSeconds": queue_timeout, "QueuedAt": time.time()}
        queued = json.dumps(envelope)
        call = _Call(
            self.worker.name, subscription, envelope["Id"], queued, queue_timeout, timeout, envelope.get("Method", "")
        )
        return json.loads(call.run())


class _Call:
    """One request to a polling agent, kept by the caller until it is answered.

    1. Queue it (with its owner, so only that subscription may answer it) and wake the endpoint.
    2. Phase one, up to the queue timeout: wait for an agent to take it. If the agent has no presence
       (no open long poll for PRESENCE_TTL seconds), take it back at once: nothing reached the worker
       (WorkerUnreachable), and the caller may re-plan.
    3. Phase two, the call's own timeout after the agent took it: wait for its answer. A StartScript
       the agent never acknowledged is put back once by the endpoint: then we are in phase one again.
    4. Redis errors are retried with backoff up to the call's deadline; after a reconnect the request
       is queued again if Redis lost it (never twice: the endpoint drops requests already answered).
    """

    def __init__(
        self,
        name: str,
        subscription: str,
        request_id: str,
        queued: str,
        queue_timeout: float,
        timeout: float,
        method: str = "",
    ):
        self.name, self.subscription, self.request_id, self.queued, self.method = (
            name,
            subscription,
            request_id,
            queued,
            method,
        )
        self.queue_timeout, self.timeout = queue_timeout, timeout
        self.give_up = time.monotonic() + queue_timeout + timeout

    def run(self) -> bytes:
        backoff, lost_redis, queued_once = 0.2, False, False
        while True:
            try:
                client = redis_client()
                if not queued_once or (lost_redis and self._lost(client)):
                    self._queue(client)
                    queued_once = True
                lost_redis = False
                return self._await(client)
            except redis.RedisError as error:
                if time.monotonic() + backoff >= self.give_up:
                    raise TransportError(f"Redis did not carry the request for {self.name}: {error}") from None
                log.warning(
                    "Redis failed while carrying a request for %s (%s); retrying in %.1fs", self.name, error, backoff
                )
                lost_redis = True
                time.sleep(backoff)
                backoff = min(backoff * 2, 5)

    def _queue(self, client) -> None:
        pipe = client.pipeline()
        pipe.set(owner_key(self.request_id), self.subscription, ex=int(self.queue_timeout + self.timeout + 600))
        pipe.rpush(requests_key(self.subscription), self.queued)
        pipe.publish(NOTIFY_CHANNEL, self.subscription)
        pipe.execute()

    def _lost(self, client) -> bool:
        """After a Redis restart: is the request neither queued, nor handed out, nor answered?"""
        pipe = client.pipeline()
        pipe.lpos(requests_key(self.subscription), self.queued)
        pipe.hexists(handed_key(self.subscription), self.request_id)
        pipe.exists(response_key(self.request_id))
        pipe.exists(owner_key(self.request_id))
        position, handed, answered, owned = pipe.execute()
        return position is None and not handed and not answered and not owned

    def _await(self, client) -> bytes:
        picked_up_at = None
        deadline = time.monotonic() + self.queue_timeout
        while True:
            answer = client.blpop([response_key(self.request_id)], timeout=1)
            if answer is not None:
                client.delete(owner_key(self.request_id))
                return answer[1]
            now = time.monotonic()
            still_queued = client.lpos(requests_key(self.subscription), self.queued) is not None
            if picked_up_at is None and not still_queued and self._lost(client):
                # Redis restarted empty under us (the client reconnects by itself, so no error said so).
                self._queue(client)
                continue
            if picked_up_at is None and not still_queued:
                picked_up_at, deadline = now, now + self.timeout
            elif picked_up_at is not None and still_queued:  # put back (unacknowledged): waiting for an agent again
                picked_up_at, deadline = None, max(deadline, now + min(self.queue_timeout, 10))
            present = client.exists(presence_key(self.subscription))
            if picked_up_at is None and not present:
                if client.lrem(requests_key(self.subscription), 1, self.queued):
                    client.delete(owner_key(self.request_id))
                    raise WorkerUnreachable(
                        f"The polling tentacle {self.name} (poll://{self.subscription}/) is not connected: "
                        f"it has not polled for {PRESENCE_TTL}s, so the request was not delivered."
                    )
            elif picked_up_at is not None and not present and self.method != "StartScript":
                # It took the request, then went away: a live agent always has a poll open, so no answer is coming.
                # (An unacknowledged StartScript may still be put back for its return: that one waits its timeout.)
                client.delete(owner_key(self.request_id))
                raise TransportError(
                    f"The polling tentacle {self.name} took the request, then its connection was gone for "
                    f"{PRESENCE_TTL}s: the agent stopped or lost its connection."
                )
            if now >= deadline:
                break
        # Take it back if still queued (never picked up, or put back undelivered) so a late agent does not run it.
        taken_back = client.lrem(requests_key(self.subscription), 1, self.queued)
        client.delete(owner_key(self.request_id))
        if taken_back or picked_up_at is None:
            raise WorkerUnreachable(
                f"The polling tentacle {self.name} (poll://{self.subscription}/) did not pick up the "
                f"request within {self.queue_timeout:.0f}s: is the agent running and connected?"
            )
        raise TransportError(
            f"The polling tentacle {self.name} took the request but sent no answer within "
            f"{self.timeout:.0f}s: the agent may have stopped or lost its connection."
        )
