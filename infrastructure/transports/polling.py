"""Polling tentacles: the server cannot connect to them, so it queues requests in Redis for the
agent's subscription; the polling endpoint hands them to the agent and routes its answers back.

Keys: `reef:poll:<subscription>:requests` (a list of envelopes, oldest first),
`reef:poll:response:<request id>` (a list the waiting caller blocks on) and
`reef:poll:<subscription>:connection` (counts the agent's long polls: only the newest takes requests).
"""

from __future__ import annotations

import json
import time
from functools import lru_cache

import redis
from django.conf import settings

from infrastructure.transports import TransportError, WorkerUnreachable
from infrastructure.transports.envelope import EnvelopeTransport


def redis_client() -> redis.Redis:
    """One client (one connection pool) per process and URL: callers on hot paths (every log batch,
    every heartbeat) must not open a TCP connection each time. redis-py resets the pool after a fork."""
    return _client_for(settings.REDIS_URL)


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    # A Redis restart is ridden out: a command that meets a dropped connection reconnects and retries with
    # backoff (0.1 s doubling to 2 s, about 15 s in all); idle connections are checked before reuse.
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5, socket_keepalive=True,
                                health_check_interval=10,
                                retry=Retry(ExponentialBackoff(cap=2, base=0.1), 12),
                                retry_on_error=[redis.ConnectionError, redis.TimeoutError])


NOTIFY_CHANNEL = "reef:poll:notify"


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
        client = redis_client()
        queued = json.dumps(envelope)
        try:
            pipe = client.pipeline()
            pipe.set(owner_key(envelope["Id"]), subscription, ex=int(queue_timeout + timeout + 600))
            pipe.rpush(requests_key(subscription), queued)
            pipe.publish(NOTIFY_CHANNEL, subscription)
            pipe.execute()
            answer = self._await(client, subscription, envelope["Id"], queued, queue_timeout, timeout)
        except redis.RedisError as error:
            raise TransportError(f"Redis did not carry the request for {self.worker.name}: {error}") from None
        return json.loads(answer)

    def _await(self, client, subscription: str, request_id: str, queued: str, queue_timeout: float, timeout: float) -> bytes:
        """Two phases: up to the queue timeout for the agent to pick the request up, then only the
        call's own timeout for its answer, so a vanished agent fails the caller promptly."""
        picked_up_at = None
        deadline = time.monotonic() + queue_timeout
        while True:
            answer = client.blpop([response_key(request_id)], timeout=1)
            if answer is not None:
                return answer[1]
            now = time.monotonic()
            if picked_up_at is None and client.lpos(requests_key(subscription), queued) is None:
                picked_up_at, deadline = now, now + timeout
            if now >= deadline:
                break
        # Take it back if still queued (never picked up, or put back undelivered) so a late agent does not run it.
        if client.lrem(requests_key(subscription), 1, queued) or picked_up_at is None:
            raise WorkerUnreachable(f"The polling tentacle {self.worker.name} (poll://{subscription}/) did not pick up the "
                                 f"request within {queue_timeout:.0f}s: is the agent running and connected?")
        raise TransportError(f"The polling tentacle {self.worker.name} took the request but sent no answer within "
                             f"{timeout:.0f}s: the agent may have stopped or lost its connection.")
