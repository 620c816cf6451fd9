"""A task's log as its runner writes it: numbered, masked lines under the nodes of its activity tree,
stored in batches (logstore) and then published to live viewers (logstream)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstore, logstream
from servertasks.services.database import db_connection_lost, reopen_db_connection, retrying_db_write
from tentacle_agent.runner import secret_forms

logger = logging.getLogger(__name__)


def store_lines(batch: list[TaskLogLine]) -> None:
    """One INSERT per batch: the lines become chunks (logstore; hot path: every line of every task)."""
    logstore.store_lines(batch)


def store_lines_once(batch: list[TaskLogLine]) -> None:
    """store_lines, safe to repeat: a batch the database stored before its answer was lost is not stored twice."""
    try:
        store_lines(batch)
    except IntegrityError:
        reopen_db_connection()
        stored = {
            line.sequence
            for line in logstore.iter_lines(
                task_id=batch[0].task_id, after=batch[0].sequence - 1, before=batch[-1].sequence + 1
            )
        }
        if not stored:
            raise
        rest = [line for line in batch if line.sequence not in stored]
        if rest:
            store_lines(rest)


class TaskLog:
    """A task's log: numbered, masked lines under the nodes of its activity tree, stored in batches.

    Thread-safe: a task's parallel invocations write to one TaskLog. `publish` hooks (live streaming)
    see each stored batch and each node change.
    """

    MASK = "********"
    publish_hooks: list = [logstream.publish]

    def __init__(self, task: ServerTask, sensitive_values: list[str] | tuple = (), *, new: bool = False):
        """`new`: the task's first run, whose log has no line nor node yet (two reads fewer), and whose live stream
        its claim started (claim_server_task)."""
        self.task = task
        self.lock = threading.RLock()
        self.pending: list[TaskLogLine] = []
        self.waiting_for_database = False
        self.last_flush = time.monotonic()
        self.sensitive = sorted({form for v in sensitive_values for form in secret_forms(v)}, key=len, reverse=True)
        last = None if new else logstore.last_sequence(task.pk)
        self.next_sequence = 0 if last is None else last + 1
        if not new and self.next_sequence == 0 and not ActivityNode.objects.filter(task=task).exists():
            logstream.forget(task.pk)

    def mask(self, text: str) -> str:
        for value in self.sensitive:
            text = text.replace(value, self.MASK)
        return text

    def add_sensitive(self, values) -> None:
        with self.lock:
            self.sensitive = sorted(
                set(self.sensitive) | {form for v in values for form in secret_forms(v)}, key=len, reverse=True
            )

    def write(
        self, text: str, category: str = TaskLogLine.Category.INFO, node: ActivityNode | None = None, occurred=None
    ) -> None:
        self.write_many([(text, category)], node, occurred)

    def write_many(self, entries: list[tuple[str, str]], node: ActivityNode | None = None, occurred=None) -> None:
        """(text, category) pairs, in order, under one node (hot path: every line a script prints). A text
        with line breaks becomes one line per line."""
        if not entries:
            return
        occurred, node_id, task_id = occurred or datetime.now(UTC), node.pk if node is not None else None, self.task.pk
        with self.lock:
            pending, sequence = self.pending, self.next_sequence
            for text, category in entries:
                # PostgreSQL refuses NUL in text: a script printing binary output must not lose the batch.
                text = str(text).replace("\x00", "\ufffd")
                if self.sensitive:
                    text = self.mask(text)
                for line in text.splitlines() or ("",):
                    pending.append(TaskLogLine.of(task_id, node_id, sequence, occurred, category, line))
                    sequence += 1
            self.next_sequence = sequence
            # A flush is one chunk INSERT and one stream entry: large batches, but never older than 50 ms.
            if len(pending) >= 2000 or time.monotonic() - self.last_flush > 0.05:
                self.flush()

    def flush(self, wait: bool = False) -> None:
        """Stores the pending lines in one statement. When the database is unreachable they wait here, in
        order, for the next flush (a failed statement is all or nothing, so readers never wait at a hole);
        past REEF_LOG_BUFFER_LINES, or with `wait`, the writer waits for the database instead."""
        with self.lock:
            batch, self.pending, self.last_flush = self.pending, [], time.monotonic()
            if not batch:
                return
            try:
                store_lines_once(batch)
            except Exception as error:
                self.pending = batch + self.pending
                if not db_connection_lost(error):
                    raise
                reopen_db_connection()
                if not wait and len(self.pending) < settings.REEF_LOG_BUFFER_LINES:
                    if not self.waiting_for_database:  # said once per outage, not once per flush
                        logger.warning(
                            "Task %s: log lines wait in memory for the database (%s).",
                            self.task.pk,
                            str(error).strip()[:200],
                        )
                    self.waiting_for_database = True
                    return
                batch, self.pending = self.pending, []
                retrying_db_write(f"store the log of task {self.task.pk}", lambda: store_lines_once(batch))
            if self.waiting_for_database:
                logger.warning("Task %s: the database is back; the waiting log lines are stored.", self.task.pk)
                self.waiting_for_database = False
            for hook in self.publish_hooks:
                hook(self.task, lines=batch)

    # The activity tree ------------------------------------------------------------------------

    def node(self, name: str, parent: ActivityNode | None = None, *, running: bool = False) -> ActivityNode:
        """A new node of the tree, Pending, or Running from now (one write, not two)."""
        fields = {"status": ActivityNode.Status.RUNNING, "started": timezone.now()} if running else {}
        node = retrying_db_write(
            "add a log node",
            lambda: ActivityNode.objects.create(task=self.task, parent=parent, name=self.mask(name)[:300], **fields),
        )
        self._changed(node)
        return node

    def nodes(self, names: list[str], parent: ActivityNode) -> list[ActivityNode]:
        """New Pending children of `parent`, in order, in one write (a task's steps)."""
        nodes = [ActivityNode(task=self.task, parent=parent, name=self.mask(name)[:300]) for name in names]
        retrying_db_write("add log nodes", lambda: ActivityNode.objects.bulk_create(nodes))
        self._changed(*nodes)
        return nodes

    def start(self, node: ActivityNode) -> None:
        node.status, node.started = ActivityNode.Status.RUNNING, timezone.now()
        retrying_db_write("start a log node", lambda: node.save(update_fields=["status", "started"]))
        self._changed(node)

    def finish(self, node: ActivityNode, status: str) -> None:
        self.flush(wait=True)
        node.status, node.ended = status, timezone.now()
        node.started = node.started or node.ended
        retrying_db_write("finish a log node", lambda: node.save(update_fields=["status", "started", "ended"]))
        self._changed(node)

    def _changed(self, *nodes: ActivityNode) -> None:
        for hook in self.publish_hooks:
            hook(self.task, nodes=nodes)
