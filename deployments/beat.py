"""Celery beat, once per cluster: every node runs beat, and only the one holding the scheduler lease in
Redis (nodes.hold_scheduler_lease, renewed every tick) sends due jobs. When its holder dies the lease
expires and another node's beat takes over, reading the last run times from the database first."""

from __future__ import annotations

import logging

import redis
from django_celery_beat.schedulers import DatabaseScheduler

from deployments.services.nodes import hold_scheduler_lease, release_scheduler_lease, scheduler_owner

logger = logging.getLogger(__name__)

STANDBY_SECONDS = 2.0  # how often a standby beat asks for the lease
HOLDER_SECONDS = 5.0  # the longest a holder sleeps between renewals (the lease lasts 15 s)


class LeasedDatabaseScheduler(DatabaseScheduler):
    holding = False

    def tick(self, *args, **kwargs):
        try:
            held = hold_scheduler_lease(scheduler_owner())
        except redis.RedisError as error:
            held = False
            logger.warning(
                "Beat cannot reach Redis to hold the scheduler lease (%s); sending nothing meanwhile.", error
            )
        if not held:
            if self.holding:
                logger.warning("Beat lost the scheduler lease; another node schedules now.")
            self.holding = False
            return STANDBY_SECONDS
        if not self.holding:
            logger.info("Beat holds the scheduler lease: this node sends the scheduled jobs.")
            self.holding = True
            # Another node may have sent jobs meanwhile: start again from the run times it stored.
            self._initial_read, self._heap = True, None
        return min(super().tick(*args, **kwargs), HOLDER_SECONDS)

    def close(self):
        try:
            super().close()
        finally:
            if self.holding:
                try:
                    release_scheduler_lease(scheduler_owner())
                except redis.RedisError:
                    pass  # it expires by itself
