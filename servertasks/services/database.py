"""Database blips: a dropped connection (a database restart, pg_terminate_backend) is re-opened and the
write retried. Only writes that are safe to repeat come through here."""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

DB_RETRY_SECONDS = 120


def db_connection_lost(error: Exception) -> bool:
    return isinstance(error, (OperationalError, InterfaceError))


def reopen_db_connection() -> None:
    """Drops this thread's connection so the next query opens a new one (never inside a transaction)."""
    if not connection.in_atomic_block:
        connection.close()


def retrying_db_write(what: str, write, *, seconds: float = DB_RETRY_SECONDS):
    """Runs `write` until it succeeds, re-opening a lost connection, with backoff (0.2 s doubling to 5 s)."""
    delay, deadline, attempt = 0.2, time.monotonic() + seconds, 1
    while True:
        try:
            return write()
        except Exception as error:
            if not db_connection_lost(error) or connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "Could not %s (attempt %s): %s; retrying on a new connection.", what, attempt, str(error).strip()[:200]
            )
            reopen_db_connection()
            time.sleep(delay)
            delay, attempt = min(delay * 2, 5), attempt + 1
