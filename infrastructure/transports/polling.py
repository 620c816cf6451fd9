"""Polling tentacles: the server cannot connect to them, so it queues requests in Redis for the
agent's subscription; the polling endpoint hands them to the agent and routes its answers back.

Keys: `reef:poll:<subscription>:requests` (a list of envelopes, oldest first) and
`reef:poll:response:<request id>` (a list the waiting caller blocks on).
"""

from __future__ import annotations

import json
import time

import redis
from django.conf import settings

from infrastructure.transports import TransportError
from infrastructure.transports.envelope import EnvelopeTransport


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, socket_connect_timeout=5)


NOTIFY_CHANNEL = "reef:poll:notify"


def owner_key(request_id: str) -> str:
    return f"reef:poll:owner:{request_id}"


def requests_key(subscription: str) -> str:
    return f"reef:poll:{subscription}:requests"


def response_key(request_id: str) -> str:
    return f"reef:poll:response:{request_id}"


class PollingTransport(EnvelopeTransport):
    def exchange(self, envelope: dict, timeout: float) -> dict:
        subscription = self.worker.subscription_id
        if not subscription:
            raise TransportError(f"{self.worker.name} has no polling subscription.")
        queue_timeout = self.worker.machine_policy.polling_request_queue_timeout
        envelope = {**envelope, "ExpiresInSeconds": queue_timeout, "QueuedAt": time.time()}
        client = redis_client()
        try:
            pipe = client.pipeline()
            pipe.set(owner_key(envelope["Id"]), subscription, ex=int(queue_timeout + timeout + 600))
            pipe.rpush(requests_key(subscription), json.dumps(envelope))
            pipe.publish(NOTIFY_CHANNEL, subscription)
            pipe.execute()
            answer = client.blpop([response_key(envelope["Id"])], timeout=max(1, int(queue_timeout + timeout)))
        except redis.RedisError as error:
            raise TransportError(f"Redis did not take the request for {self.worker.name}: {error}") from None
        finally:
            client.close()
        if answer is None:
            # Take the request back if nobody fetched it, so a late agent does not run it.
            redis_client().lrem(requests_key(subscription), 1, json.dumps(envelope))
            raise TransportError(f"The polling tentacle {self.worker.name} (poll://{subscription}/) did not pick up the "
                                 f"request within {queue_timeout + timeout:.0f}s: is the agent running and connected?")
        return json.loads(answer[1])
