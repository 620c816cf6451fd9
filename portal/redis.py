"""The process's shared Redis client: the Celery broker's Redis, used for polling queues, presence,
heartbeats, locks, round-robin cursors and the live task-log streams."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def redis_client() -> redis.Redis:
    """One client (one connection pool) per process and URL: callers on hot paths (every log batch,
    every heartbeat) must not open a TCP connection each time. redis-py resets the pool after a fork."""
    return _client_for(settings.REDIS_URL)


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    # A Redis restart is ridden out: a command that meets a dropped connection reconnects and retries with
    # backoff (0.1 s doubling to 2 s, about 15 s in all); idle connections are checked before reuse.
    return redis.Redis.from_url(
        url,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=2, base=0.1), 12),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
