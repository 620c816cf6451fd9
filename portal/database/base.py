"""PostgreSQL, riding out a dropped connection (a database restart, `pg_terminate_backend`).

Django keeps a connection per thread and, outside requests, never looks at it again: after a blip every
query of a long-running task thread would fail on the dead connection. Here:

1. Before a cursor is made outside a transaction, a connection psycopg already knows is closed or
   broken is dropped, so the next query opens a new one.
2. A read (SELECT) outside a transaction that meets a dropped connection is retried on a new one, with
   backoff, for up to `RETRY_SECONDS`: repeating a read changes nothing.
3. Writes are not retried here (repeating one is not always safe); the callers that write during a task
   retry the writes they know to be safe to repeat (servertasks.services.database).
"""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError
from django.db.backends.postgresql import base
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

log = logging.getLogger(__name__)

RETRY_SECONDS = 30


def connection_lost(error: Exception) -> bool:
    """A dropped connection, not a bad statement: worth a new connection and another try."""
    return isinstance(error, (OperationalError, InterfaceError))


class _Reconnecting:
    def execute(self, sql, params=None):
        try:
            return super().execute(sql, params)
        except (OperationalError, InterfaceError) as error:
            if not self._may_retry(sql):
                raise
            first = error
        delay, deadline = 0.1, time.monotonic() + RETRY_SECONDS
        while True:
            log.warning(
                "The database connection was lost (%s); reading again on a new connection.", str(first).strip()[:200]
            )
            try:
                self.db.close()
                self.cursor = self.db._cursor().cursor
                return super().execute(sql, params)
            except (OperationalError, InterfaceError) as error:
                if time.monotonic() + delay > deadline:
                    raise
                first = error
                time.sleep(delay)
                delay = min(delay * 2, 2)

    def _may_retry(self, sql) -> bool:
        text = sql if isinstance(sql, str) else str(sql)
        return not self.db.in_atomic_block and text.lstrip()[:6].upper() == "SELECT"


class ReconnectingCursorWrapper(_Reconnecting, CursorWrapper):
    pass


class ReconnectingCursorDebugWrapper(_Reconnecting, CursorDebugWrapper):
    pass


class DatabaseWrapper(base.DatabaseWrapper):
    def _cursor(self, name=None):
        raw = self.connection
        if raw is not None and not self.in_atomic_block and (raw.closed or getattr(raw, "broken", False)):
            self.close()
        return super()._cursor(name)

    def make_cursor(self, cursor):
        return ReconnectingCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return ReconnectingCursorDebugWrapper(cursor, self)
