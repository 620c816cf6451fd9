"""Upgrading a Reef whose server tasks still belong to deployments: servertasks' 0001 and deployments' 0007
move them in the state only, so every row (task, tree, log, what points at them) is there afterwards and
their content types keep their ids, so the permissions attached to them stay attached; and back."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from deployments.models import WorkerLease
from infrastructure.models import MachinePolicy, Worker
from portal.models import Space
from servertasks.models import ActivityNode, ServerTask, TaskLogChunk, TaskLogLine
from servertasks.services import logstore

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deployments", "0006_lifecycles_groups_channels"), ("servertasks", None)]


def migrate(targets=None):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return executor.loader.project_state([target for target in targets if target[1] is not None]).apps


def test_tasks_their_logs_and_their_content_types_come_through_the_move_unchanged():
    # Infrastructure stays migrated (deployments' 0006 needs less of it): its worker is written as today.
    worker = Worker.objects.create(
        space=Space.objects.get(is_default=True),
        name="build-01",
        communication_style="Ssh",
        machine_policy=MachinePolicy.objects.first(),
    )
    old_apps = migrate(BEFORE)
    try:
        old_types = old_apps.get_model("contenttypes", "ContentType")
        assert not old_types.objects.filter(app_label="servertasks").exists()
        type_ids = {
            model: old_types.objects.get(app_label="deployments", model=model).pk
            for model in ("servertask", "activitynode", "tasklogchunk")
        }
        OldSpace = old_apps.get_model("portal", "Space")
        OldTask = old_apps.get_model("deployments", "ServerTask")
        space = OldSpace.objects.get(pk=worker.space_id)
        task = OldTask.objects.create(
            space=space, name="Deploy", description="Deploy 1.0 to Production", state="Success"
        )
        step = old_apps.get_model("deployments", "ActivityNode").objects.create(
            task=task, name="Step 1", status="Success"
        )
        chunk = logstore.encode_chunk(
            [TaskLogLine(task_id=task.pk, node_id=step.pk, sequence=n, text=f"line {n}") for n in range(3)]
        )
        old_apps.get_model("deployments", "TaskLogChunk").objects.create(
            task=task, node=step, first_sequence=0, last_sequence=2, compressed=chunk.compressed, data=chunk.data
        )
        old_apps.get_model("deployments", "WorkerLease").objects.create(
            task=task, worker_id=worker.pk, step_name="Step 1", rule="the only worker"
        )
    finally:
        migrate()

    # Written by today's code into the moved table, read back through the moved model.
    moved = ServerTask.objects.get(pk=task.pk)
    assert (moved.description, moved.state) == ("Deploy 1.0 to Production", "Success")
    assert list(ActivityNode.objects.filter(task=moved).values_list("name", flat=True)) == ["Step 1"]
    assert WorkerLease.objects.get(task=moved).worker.name == "build-01"
    assert [(line.node_id, line.text) for line in logstore.read_lines(task_id=task.pk)] == [
        (step.pk, "line 0"),
        (step.pk, "line 1"),
        (step.pk, "line 2"),
    ]
    assert {model: ContentType.objects.get(app_label="servertasks", model=model).pk for model in type_ids} == type_ids
    assert not ContentType.objects.filter(app_label="deployments", model__in=type_ids).exists()
    assert Permission.objects.get(codename="view_servertask").content_type_id == type_ids["servertask"]
    assert TaskLogChunk.objects.filter(task=moved).count() == 1

    old_apps = migrate(BEFORE)  # and back: deployments' again, same ids
    try:
        old_types = old_apps.get_model("contenttypes", "ContentType")
        assert old_types.objects.get(app_label="deployments", model="servertask").pk == type_ids["servertask"]
        assert (
            old_apps.get_model("deployments", "ServerTask").objects.get(pk=task.pk).description
            == "Deploy 1.0 to Production"
        )
    finally:
        migrate()
