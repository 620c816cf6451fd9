"""A viewer watching while the script prints: stored batches are forwarded from the live stream as they are,
yet a viewer that stops acknowledging still gets no more than the window, and every line arrives once."""

from __future__ import annotations

import pytest

from servertasks.consumers import BATCH_LINES, WINDOW, TaskLogConsumer
from servertasks.models import ServerTask
from tests.deployments.test_live_task_log import open_socket, read_until_end, run, running_task, write_lines

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_that_stops_acknowledging_mid_stream_gets_the_window_and_then_the_rest(
    space, administrator, monkeypatch
):
    forwarded = []
    hold_raw = TaskLogConsumer.hold_raw
    monkeypatch.setattr(TaskLogConsumer, "hold_raw", lambda self, fields: forwarded.append(1) or hold_raw(self, fields))
    task = running_task(space)
    total = WINDOW * 2 + 700

    async def watch() -> tuple[int, list[int], list[int]]:
        communicator = await open_socket(task, administrator)
        writer = write_lines(task, total, 250, pause=0.01)  # live: many small stored batches while we watch
        received: list[int] = []
        sizes: list[int] = []
        while len(received) < WINDOW:  # never acks
            message = await communicator.receive_json_from(timeout=30)
            if message["type"] == "lines":
                received.extend(line["Sequence"] for line in message["lines"])
                sizes.append(len(message["lines"]))
        held = len(received)
        assert await communicator.receive_nothing(timeout=1)
        await communicator.send_json_to({"ack": received[-1]})
        await read_until_end(communicator, received)
        await communicator.disconnect()
        writer.join(60)
        return held, received, sizes

    held, received, sizes = run(watch)
    assert held == WINDOW
    assert received == list(range(total))
    assert max(sizes) <= BATCH_LINES
    assert forwarded, "batches went out as stored, without being decoded"
    assert ServerTask.objects.get(pk=task.pk).state == "Success"
