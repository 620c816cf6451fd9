"""A line that could not be stored must not stop every viewer at its sequence number: binary output is
stored, a failed INSERT keeps its lines for the next flush, and a sequence that never appears is passed."""

import pytest
from django.db import DatabaseError

from servertasks import consumers
from servertasks.models import ServerTask, TaskLogLine
from servertasks.services import logstore, tasklog
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import finish_server_task
from tests.deployments.test_live_task_log import open_socket, read_until_end, run, running_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_nul_byte_in_a_script_s_output_is_stored_as_a_replacement_character(space):
    task = running_task(space)
    log = TaskLog(task)
    log.write("binary \x00 output")
    log.flush()
    assert [line.text for line in logstore.read_lines(task_id=task.pk)] == ["binary \ufffd output"]


def test_a_batch_whose_insert_failed_is_stored_by_the_next_flush_with_its_sequences(space, monkeypatch):
    task = running_task(space)
    log = TaskLog(task)
    log.write("first")
    real = tasklog.store_lines

    def failing(batch):
        monkeypatch.setattr(tasklog, "store_lines", real)
        raise DatabaseError("the database went away for a moment")

    monkeypatch.setattr(tasklog, "store_lines", failing)
    with pytest.raises(DatabaseError):
        log.flush()
    log.write("second")
    log.flush()
    assert [(line.sequence, line.text) for line in logstore.read_lines(task_id=task.pk)] == [
        (0, "first"),
        (1, "second"),
    ]


def test_a_viewer_goes_on_past_a_sequence_that_was_never_stored(space, administrator, monkeypatch):
    monkeypatch.setattr(consumers, "HOLE_GRACE", 0.5)
    task = running_task(space)
    logstore.store_lines(
        [TaskLogLine(task=task, sequence=n, text=f"line {n}") for n in [*range(0, 600), *range(603, 1300)]]
    )
    finish_server_task(task=task, state="Failed")

    async def watch():
        communicator = await open_socket(task, administrator)
        received: list[int] = []
        assert await read_until_end(communicator, received)
        await communicator.disconnect()
        return received

    assert run(watch) == [*range(0, 600), *range(603, 1300)]
    assert ServerTask.objects.get(pk=task.pk).state == "Failed"
