"""The websocket at /ws/tasks/<id>/: permission on connect, exactly-once ordered delivery across
reconnects at random points (hypothesis), gaps filled from storage, back-pressure on a stalled client."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal.routing import websocket_urlpatterns as all_routes  # noqa: F401 - the project's routes include ours
from servertasks.consumers import WINDOW
from servertasks.models import ServerTask
from servertasks.routing import websocket_urlpatterns
from servertasks.services import logstore, logstream
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import finish_server_task

pytestmark = pytest.mark.django_db(transaction=True)


def run(coroutine_function, *args):
    """Runs a coroutine in a thread of its own (a browser test may have left an event loop in this one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine_function(*args)).result()


def application():
    from channels.routing import URLRouter

    return URLRouter(websocket_urlpatterns)


def running_task(space) -> ServerTask:
    return ServerTask.objects.create(space=space, name="AdHocScript", description="Writes lines", state="Executing")


async def open_socket(task: ServerTask, user, after: int | None = -1) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application(), f"/ws/tasks/{task.pk}/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    if after is not None:
        await communicator.send_json_to({"after": after})
    return communicator


async def read_until_end(
    communicator, received: list[int], stop_after_messages: int | None = None, ack: bool = True
) -> bool:
    """Collect sequences; True when the server said the log ended."""
    messages = 0
    while stop_after_messages is None or messages < stop_after_messages:
        message = await communicator.receive_json_from(timeout=20)
        messages += 1
        if message["type"] == "lines":
            received.extend(line["Sequence"] for line in message["lines"])
            if ack:
                await communicator.send_json_to({"ack": message["lines"][-1]["Sequence"]})
        elif message["type"] == "end":
            return True
    return False


def write_lines(task: ServerTask, count: int, batch: int, pause: float = 0.0) -> threading.Thread:
    """A step printing `count` lines, stored and published in batches, then the task ends."""

    def run():
        from django.db import connection

        log = TaskLog(task)
        node = log.node("Step 1: Print")
        for n in range(count):
            log.write(f"line {n}", node=node)
            if (n + 1) % batch == 0:
                log.flush()
                if pause:
                    time.sleep(pause)
        log.flush()
        finish_server_task(task=task, state="Success")
        connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_anonymous_outsiders_and_other_spaces_are_closed_with_a_clear_code(space, outsider, other_space, administrator):
    task = running_task(space)

    async def close_code(user):
        communicator = await open_socket(task, user, after=None)
        message = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return message.get("code")

    assert run(close_code, AnonymousUser()) == 4401
    assert run(close_code, outsider) == 4404


@hypothesis_settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    count=st.integers(min_value=1, max_value=1500),
    batch=st.integers(min_value=1, max_value=400),
    cuts=st.lists(st.integers(min_value=1, max_value=6), min_size=0, max_size=4),
    drop_stream=st.booleans(),
)
def test_every_line_arrives_once_and_in_order_across_reconnects_at_random_points(
    space, administrator, count, batch, cuts, drop_stream
):
    task = running_task(space)
    writer = write_lines(task, count, batch, pause=0.002)

    async def watch() -> list[int]:
        received: list[int] = []
        for stop_after in [*cuts, None]:
            communicator = await open_socket(task, administrator, after=received[-1] if received else -1)
            ended = await read_until_end(communicator, received, stop_after_messages=stop_after)
            await communicator.disconnect()
            if drop_stream:
                logstream.forget(task.pk)  # as if Redis restarted: storage must fill in
            if ended:
                break
        return received

    received = run(watch)
    writer.join(30)
    assert received == list(range(count))


def test_a_stalled_client_is_not_flooded_and_the_task_does_not_wait(space, administrator):
    task = running_task(space)
    total = WINDOW * 2 + 100
    started = time.monotonic()
    writer = write_lines(task, total, 1000)
    writer.join(60)
    writing_took = time.monotonic() - started
    assert ServerTask.objects.get(pk=task.pk).state == "Success"

    async def stall_then_ack() -> list[int]:
        communicator = await open_socket(task, administrator)
        received: list[int] = []
        while len(received) < WINDOW:  # never acks: the consumer stops at the window
            message = await communicator.receive_json_from(timeout=10)
            if message["type"] == "lines":
                received.extend(line["Sequence"] for line in message["lines"])
        assert len(received) == WINDOW
        assert await communicator.receive_nothing(timeout=1)
        await communicator.send_json_to({"ack": received[-1]})
        await read_until_end(communicator, received)
        await communicator.disconnect()
        return received

    assert run(stall_then_ack) == list(range(total))
    assert writing_took < 30


def test_lines_are_masked_before_they_are_stored_or_sent(space, administrator):
    task = running_task(space)
    log = TaskLog(task, sensitive_values=["hunter2"])
    log.write("the password is hunter2")
    log.flush()
    finish_server_task(task=task, state="Success")

    async def watch():
        communicator = await open_socket(task, administrator)
        messages = []
        while (message := await communicator.receive_json_from(timeout=10))["type"] != "end":
            messages.append(message)
        await communicator.disconnect()
        return messages

    messages = run(watch)
    lines = [line["Text"] for m in messages if m["type"] == "lines" for line in m["lines"]]
    assert lines == ["the password is ********"]
    assert [line.text for line in logstore.read_lines(task_id=task.pk)] == ["the password is ********"]
    assert [m["State"] for m in messages if m["type"] == "state"] == ["Success"]


def test_a_claimed_task_starts_a_new_live_stream_that_keeps_its_executing_state(space):
    """Task ids start again in each database: a stream left under this id is dropped, but the claim's own
    "Executing" entry stays, for a viewer who opened the task while it was queued."""
    from portal.redis import redis_client
    from servertasks.services.tasks import claim_server_task

    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Waits its turn")
    redis_client().xadd(logstream.stream_key(task.pk), {"kind": "state", "data": '{"State": "Success"}'})

    claimed = claim_server_task(task.pk)
    TaskLog(claimed, new=True)

    entries = redis_client().xrange(logstream.stream_key(task.pk))
    assert [(fields[b"kind"], json.loads(fields[b"data"])["State"]) for _, fields in entries] == [
        (b"state", "Executing")
    ]
    assert claim_server_task(task.pk) is None  # a redelivered message claims nothing
