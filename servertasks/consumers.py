"""`/ws/tasks/<id>/`: a task's log, live, exactly once and in order.

The client sends `{"after": N}` (the last sequence it holds; -1 for all) and then `{"ack": N}` as it
renders. The consumer sends what storage holds after N, the activity tree and the task's state, then
follows the task's Redis Stream. Every line carries its sequence: the consumer never sends one at or
below its cursor, and fills any gap (a trimmed or lost stream, a Redis restart) from storage, so a
reconnect resumes exactly where the client left off. A client more than WINDOW lines behind its acks
is sent nothing until it catches up: a stalled tab costs the server nothing, and the task never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from portal.permissions import Permission
from portal.services.access import has_permission, spaces_visible_to
from servertasks.models import ActivityNode, ServerTask
from servertasks.services import logstore, logstream

BATCH_LINES = 5000
MIN_INTERVAL = 0.005  # at most ~200 messages a second: a busy log goes out in big batches
WINDOW = 20000  # lines sent but not yet acknowledged
HOLE_GRACE = 5.0  # seconds a missing sequence may take to appear before readers go on without it
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404


@database_sync_to_async
def _access(user, task_id: int) -> int | None:
    """None when the user may watch the task, else the close code."""
    if not user.is_authenticated:
        return CLOSE_UNAUTHENTICATED
    task = ServerTask.objects.filter(pk=task_id).select_related("space").first()
    if task is None or not spaces_visible_to(user).filter(pk=task.space_id).exists():
        return CLOSE_NOT_FOUND
    return None if has_permission(user, Permission.TASK_VIEW, space=task.space) else CLOSE_FORBIDDEN


@database_sync_to_async
def _stored_lines(task_id: int, after: int, before: int | None = None, limit: int = BATCH_LINES) -> list[dict]:
    return logstream.lines_json(logstore.read_lines(task_id=task_id, after=after, before=before, limit=limit))


@database_sync_to_async
def _snapshot(task_id: int) -> tuple[list[dict], dict]:
    task = ServerTask.objects.get(pk=task_id)
    nodes = [logstream.node_json(node) for node in ActivityNode.objects.filter(task_id=task_id).order_by("id")]
    return nodes, {
        "State": task.state,
        "IsCompleted": task.is_completed,
        "ErrorMessage": task.error_message,
        "HasWarnings": task.has_warnings,
    }


class TaskLogConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = "none"  # no channel layer: the task's Redis Stream is its group, read from a cursor

    async def connect(self):
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        self.pump: asyncio.Task | None = None
        self.acked = -1
        self.ack_event = asyncio.Event()
        self.known_nodes: set[int] = set()
        self.raw: list[str] = []  # stored batches from the stream, held to go out as one message
        self.raw_count, self.raw_last = 0, -1
        await self.accept()
        code = await _access(self.scope.get("user"), self.task_id)
        if code is not None:
            await self.close(code=code)

    async def disconnect(self, code):
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return
        if "after" in content and self.pump is None:
            try:
                after = min(max(-1, int(content["after"])), 2**31 - 1)
            except (TypeError, ValueError):
                await self.send_json({"type": "error", "message": "after must be a sequence number"})
                return
            self.cursor = self.acked = after
            self.pump = asyncio.create_task(self.follow())
        elif "ack" in content:
            try:
                self.acked = max(self.acked, int(content["ack"]))
            except (TypeError, ValueError):
                return
            self.ack_event.set()

    # Sending ---------------------------------------------------------------------------------------

    async def send_tree(self) -> dict:
        nodes, state = await _snapshot(self.task_id)
        self.known_nodes = {node["Id"] for node in nodes}
        await self.send_json({"type": "tree", "nodes": nodes})
        return state

    async def send_lines(self, lines: list[dict]) -> None:
        """Only lines right after the cursor, in order; at most BATCH_LINES a message; within the window.
        The client always knows a line's node before the line."""
        fresh = [line for line in lines if line["Sequence"] > self.cursor]
        if any(line["NodeId"] not in self.known_nodes for line in fresh if line["NodeId"] is not None):
            await self.send_tree()
        while fresh:
            while self.cursor - self.acked >= WINDOW:
                self.ack_event.clear()
                await self.ack_event.wait()
            if fresh[0]["Sequence"] != self.cursor + 1:  # a gap: storage has the missing lines
                fresh = await _stored_lines(self.task_id, self.cursor, before=fresh[0]["Sequence"]) + fresh
                if fresh[0]["Sequence"] != self.cursor + 1:
                    if not self.hole_outlived(fresh[0]["Sequence"]):
                        return  # not committed yet; the next poll finds them
                    # Never stored (a batch lost with its transaction): storage, the truth, goes on without it.
                    self.cursor = fresh[0]["Sequence"] - 1
            batch = []
            for line in fresh[: min(BATCH_LINES, WINDOW - (self.cursor - self.acked))]:  # never past the window
                if line["Sequence"] != self.cursor + 1 + len(batch):
                    break
                batch.append(line)
            await self.send_json({"type": "lines", "lines": batch})
            self.cursor = batch[-1]["Sequence"]
            fresh = [line for line in fresh[len(batch) :] if line["Sequence"] > self.cursor]
            await asyncio.sleep(MIN_INTERVAL)

    def forwardable(self, fields: dict) -> bool:
        """A stored batch from the stream can go out as it is (hot path: no decoding, no re-encoding) when it
        starts right after what is sent or held, the held batches still fit a message, and it names only
        nodes the client knows."""
        first, last = int(fields[b"first"]), int(fields[b"last"])
        nodes = {int(node) for node in fields.get(b"nodes", b"").split(b",") if node}
        after = self.raw_last if self.raw else self.cursor
        return first == after + 1 and self.raw_count + last - first + 1 <= BATCH_LINES and nodes <= self.known_nodes

    def hold_raw(self, fields: dict) -> None:
        self.raw.append(fields[b"data"].decode()[1:-1])  # a JSON array's items
        self.raw_count += int(fields[b"last"]) - int(fields[b"first"]) + 1
        self.raw_last = int(fields[b"last"])

    async def send_raw(self) -> None:
        """Sends the held batches as one message when the window allows."""
        if not self.raw:
            return
        if self.cursor - self.acked + self.raw_count > WINDOW:  # past the window: decoded, sent up to it exactly
            lines = json.loads("[" + ",".join(self.raw) + "]")
            self.raw, self.raw_count = [], 0
            await self.send_lines(lines)
            return
        await self.send(text_data='{"type": "lines", "lines": [' + ",".join(self.raw) + "]}")
        self.cursor, self.raw, self.raw_count = self.raw_last, [], 0
        await asyncio.sleep(MIN_INTERVAL)

    def hole_outlived(self, next_stored: int) -> bool:
        """True once sequences cursor+1 … next_stored-1 have been missing for HOLE_GRACE while later ones are stored."""
        now = time.monotonic()
        if getattr(self, "hole", None) != (self.cursor, next_stored):
            self.hole, self.hole_seen = (self.cursor, next_stored), now
        return now - self.hole_seen >= HOLE_GRACE

    async def catch_up(self) -> None:
        while lines := await _stored_lines(self.task_id, self.cursor):
            before = self.cursor
            await self.send_lines(lines)
            if len(lines) < BATCH_LINES or self.cursor == before:  # the end, or a hole to wait at (not spin on)
                return

    async def follow(self) -> None:
        client = aioredis.from_url(settings.REDIS_URL)
        key = logstream.stream_key(self.task_id)
        try:
            stream_id = await _newest_entry_id(client, key)
            state = await self.send_tree()
            await self.catch_up()
            await self.send_json({"type": "state", **state})
            completed, last_poll = state["IsCompleted"], time.monotonic()
            while not completed or self.cursor < await self.last_stored():
                entries = await _read_entries(client, key, stream_id)
                if entries:
                    stream_id = entries[-1][0]
                completed = await self.forward(entries, completed)
                if not entries or time.monotonic() - last_poll > 5:
                    await self.catch_up()  # a lost stream, a restarted Redis, a missed entry
                    if not entries:
                        completed = await self.completed_in_storage(completed)
                    last_poll = time.monotonic()
            await self.send_json({"type": "end", "last": self.cursor})
        finally:
            await client.aclose()

    async def forward(self, entries, completed: bool) -> bool:
        """Sends a batch of stream entries on, in order; answers whether the task has completed."""
        lines = []
        for _, fields in entries:
            kind = fields[b"kind"].decode()
            if kind == "lines":
                if b"first" in fields and not lines:
                    if not self.forwardable(fields):
                        await self.send_raw()
                    if self.forwardable(fields):
                        self.hold_raw(fields)
                        continue
                await self.send_raw()
                lines.extend(json.loads(fields[b"data"]))
                continue
            data = json.loads(fields[b"data"])
            await self.send_raw()
            await self.send_lines(lines)
            lines = []
            if kind == "node":
                self.known_nodes.add(data["Id"])
                await self.send_json({"type": "node", "node": data})
            elif kind == "state":
                if data["IsCompleted"] and not completed:
                    await self.send_tree()  # the nodes' final statuses, whatever the trimmed stream held
                completed = completed or data["IsCompleted"]
                await self.send_json({"type": "state", **data})
        await self.send_raw()
        await self.send_lines(lines)
        return completed

    async def completed_in_storage(self, completed: bool) -> bool:
        """With the stream silent, storage tells whether the task ended (its final state entry may be lost)."""
        _, state = await _snapshot(self.task_id)
        if state["IsCompleted"] and not completed:
            await self.send_tree()
            await self.send_json({"type": "state", **state})
            return True
        return completed

    @database_sync_to_async
    def last_stored(self) -> int:
        last = logstore.last_sequence(self.task_id)
        return -1 if last is None else last


async def _newest_entry_id(client, key: str):
    try:
        newest = await client.xrevrange(key, count=1)
        return newest[0][0] if newest else "0-0"
    except aioredis.RedisError:
        return "0-0"


async def _read_entries(client, key: str, stream_id) -> list:
    try:
        found = await client.xread({key: stream_id}, count=200, block=1000)
        return found[0][1] if found else []
    except aioredis.RedisError:
        await asyncio.sleep(1)  # Redis is away: storage alone, polled
        return []
