"""The Celery broker transport: kombu's Redis transport, made to survive a Redis restart.

When the broker connection drops while a task runs (acks_late: its message is unacknowledged), Celery
closes the broken connection, and kombu's Redis channel then puts the unacknowledged messages back
through a client of a transport that is already torn down: `AttributeError: 'NoneType' object has no
attribute 'hostname'`, which Celery treats as unrecoverable and the worker exits. Here a channel whose
transport is gone uses a client of its own (with retries) instead, so the messages are restored and a
running task's acknowledgement still reaches Redis once it is back. Redelivered messages of running
tasks are harmless: claiming a server task is compare-and-set.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import redis
from django.conf import settings
from kombu.transport import redis as kombu_redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


@lru_cache(maxsize=2)
def _standalone_client(url: str):
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=2, base=0.1), 12),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


class Channel(kombu_redis.Channel):
    @contextmanager
    def conn_or_acquire(self, client=None):
        if client is None and getattr(self.connection, "client", None) is None:
            client = _standalone_client(settings.CELERY_BROKER_URL)
        with super().conn_or_acquire(client) as acquired:
            yield acquired


class Transport(kombu_redis.Transport):
    Channel = Channel
