"""Upgrading a Reef whose logs are a row per line: migration 0005 turns every row into chunks, and the log
reads back exactly (text, order, node, category, time); migrating back restores the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deployments", "0004_server_nodes")]
AFTER = None  # the latest: 0005 and the migrations after it, which going back to 0004 undid too


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or [node for node in executor.loader.graph.leaf_nodes() if node[0] == "deployments"]
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_log_rows_become_chunks_and_read_back_exactly():
    old_apps = migrate(BEFORE)
    try:
        Space = old_apps.get_model("portal", "Space")
        ServerTask = old_apps.get_model("deployments", "ServerTask")
        ActivityNode = old_apps.get_model("deployments", "ActivityNode")
        TaskLogLine = old_apps.get_model("deployments", "TaskLogLine")
        space = Space.objects.first() or Space.objects.create(name="Default", slug="default", is_default=True)
        chatty = ServerTask.objects.create(space=space, name="Deploy", description="Chatty", state="Success")
        quiet = ServerTask.objects.create(space=space, name="Health", description="Quiet", state="Success")
        step = ActivityNode.objects.create(task=chatty, name="Step 1")
        started = timezone.now() - timedelta(days=3)
        rows = []
        for n in range(10_000):  # several chunks' worth, lines outside and inside a node, a hole at 7000
            if n == 7000:
                continue
            rows.append(
                TaskLogLine(
                    task=chatty,
                    node=step if n >= 10 else None,
                    sequence=n,
                    occurred=started + timedelta(microseconds=n * 1001),
                    category="Warning" if n == 5000 else "Info",
                    text=f"line {n} ✓ " + "z" * (n % 40),
                )
            )
        rows.append(TaskLogLine(task=quiet, sequence=0, occurred=started, category="Info", text="healthy"))
        TaskLogLine.objects.bulk_create(rows, batch_size=2000)
        expected = [(r.sequence, r.node_id, r.occurred, r.category, r.text) for r in rows[:-1]]
    finally:
        migrate(AFTER)

    from servertasks.models import ActivityNode, TaskLogChunk
    from servertasks.services import logstore

    chunks = TaskLogChunk.objects.filter(task_id=chatty.pk)
    assert 2 < chunks.count() < 50
    assert [
        (line.sequence, line.node_id, line.occurred, line.category, line.text)
        for line in logstore.iter_lines(task_id=chatty.pk)
    ] == expected
    assert [line.text for line in logstore.read_lines(task_id=quiet.pk)] == ["healthy"]
    assert logstore.node_has_warnings(ActivityNode.objects.get(pk=step.pk))
    assert logstore.line_count(chatty.pk) == 9999 and logstore.last_sequence(chatty.pk) == 9999

    old_apps = migrate(BEFORE)  # and back: the rows again
    try:
        TaskLogLine = old_apps.get_model("deployments", "TaskLogLine")
        assert (
            list(
                TaskLogLine.objects.filter(task_id=chatty.pk)
                .order_by("sequence")
                .values_list("sequence", "node_id", "occurred", "category", "text")
            )
            == expected
        )
    finally:
        migrate(AFTER)
