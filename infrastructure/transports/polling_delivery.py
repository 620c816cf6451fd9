"""Delivery of queued requests to polling agents: taken only by the newest long poll, put back at the head of the
queue when they could not be written, handed out again once when a StartScript is not acknowledged; and the
pub/sub listener that wakes waiting polls."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import cast

import redis

from infrastructure.transports.polling import (
    NOTIFY_CHANNEL,
    handed_key,
    owner_key,
    redelivered_key,
    requests_key,
    response_key,
    unacked_key,
)

log = logging.getLogger("infrastructure.transports.polling_endpoint")  # one logger for the whole endpoint

ACK_SECONDS = 5  # a StartScript not acknowledged this long after it was handed out is put back (once)
DELIVERY_TTL = 24 * 3600

# Atomically: up to ARGV[2] requests from KEYS[1], only if ARGV[1] is still the newest connection (KEYS[2]).
TAKE_IF_NEWEST = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local taken = redis.call('LRANGE', KEYS[1], 0, ARGV[2] - 1)
redis.call('LTRIM', KEYS[1], ARGV[2], -1)
return taken
"""


class Waiters:
    """Events for subscriptions with an agent waiting, set by one pub/sub listener thread."""

    def __init__(self, redis_url: str):
        self.lock = threading.Lock()
        self.events: dict[str, set[threading.Event]] = {}
        self.redis_url = redis_url
        threading.Thread(target=self._listen, name="polling-notify", daemon=True).start()

    def register(self, subscription: str) -> threading.Event:
        event = threading.Event()
        with self.lock:
            self.events.setdefault(subscription, set()).add(event)
        return event

    def unregister(self, subscription: str, event: threading.Event) -> None:
        with self.lock:
            events = self.events.get(subscription)
            if events:
                events.discard(event)
                if not events:
                    del self.events[subscription]

    def _wake_all(self) -> None:
        with self.lock:
            for events in self.events.values():
                for event in events:
                    event.set()

    def _listen(self) -> None:
        reconnecting = False
        while True:
            try:
                # A health check interval makes a silently dropped connection (a Redis restart) an error.
                pubsub = redis.Redis.from_url(
                    self.redis_url, health_check_interval=5, socket_connect_timeout=5, socket_keepalive=True
                ).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(NOTIFY_CHANNEL)
                if reconnecting:
                    log.info("polling notifications resumed")
                    self._wake_all()  # anything queued while we were away
                reconnecting = False
                while True:
                    message = pubsub.get_message(timeout=5)
                    if message is None:
                        pubsub.ping()  # raises if the connection is gone
                        continue
                    if message.get("type") != "message":
                        continue  # the answer to our ping
                    subscription = message["data"].decode()
                    with self.lock:
                        for event in self.events.get(subscription, ()):
                            event.set()
            except (redis.RedisError, OSError, ValueError) as error:
                reconnecting = True
                log.warning("polling notifications interrupted (%s); reconnecting", error)
                self._wake_all()  # everyone re-checks their queue themselves
                time.sleep(1)


def put_back(redis_: redis.Redis, subscription: str, taken: list[bytes]) -> None:
    pipe = redis_.pipeline()
    pipe.lpush(requests_key(subscription), *reversed(taken))  # at the head, in their order
    pipe.publish(NOTIFY_CHANNEL, subscription)
    pipe.execute()


def redeliver(redis_: redis.Redis, subscription: str, request_ids: list[bytes]) -> None:
    """StartScripts handed out ACK_SECONDS ago and still not acknowledged never reached the agent
    (or it died before starting them): put each back at the head of the queue, once. The ticket
    the server chose makes a duplicate harmless should the agent have started it after all."""
    for member in request_ids:
        if not redis_.zrem(unacked_key(subscription), member):
            continue  # acknowledged or claimed by another endpoint meanwhile
        raw = cast(bytes | None, redis_.hget(handed_key(subscription), member))
        redis_.hdel(handed_key(subscription), member)
        request_id = member.decode()
        if raw is None or not redis_.exists(owner_key(request_id)) or redis_.exists(response_key(request_id)):
            continue  # its caller gave up, or has its answer
        if redis_.set(redelivered_key(request_id), 1, nx=True, ex=DELIVERY_TTL):
            log.info("poll://%s/ did not acknowledge request %s: delivering it again", subscription, request_id)
            put_back(redis_, subscription, [raw])


def expired(raw: bytes) -> bool:
    envelope = json.loads(raw)
    return envelope.get("QueuedAt", 0) + envelope.get("ExpiresInSeconds", 1e9) < time.time()  # its caller gave up
