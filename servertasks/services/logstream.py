"""The live side of task logs: each stored batch of lines, each activity-node change and the task's
final state are appended to a per-task Redis Stream. Storage (logstore's chunks) stays the truth; the
stream is how websockets learn of new lines quickly, and a reader that finds a gap, or no stream at
all (Redis restarted), catches up from storage by sequence number.

An entry is appended only once its lines are stored, so the stream need only hold what live viewers
have not read yet: it keeps its newest STREAM_MAXLEN entries, only the final state once its task ends,
and expires FINISHED_TTL later (a 100,000-line stream once held 11–16 MB of Redis for an hour)."""

from __future__ import annotations

import json
import logging

import redis
from django.conf import settings
from django.db import transaction

from portal.redis import redis_client

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100  # entries (stored batches), approximate trimming; a viewer further behind reads storage
STREAM_TTL = 24 * 3600  # seconds a stream lives after its last entry
FINISHED_TTL = 60  # and after its task ended: followers read the final state within a second


def stream_key(task_id: int) -> str:
    return f"{settings.REEF_STREAM_PREFIX}:task:{task_id}:log"


def lines_json(lines) -> list[dict]:
    """Lines as live viewers get them; a batch's lines mostly share one time, formatted once (hot path)."""
    found, last, occurred = [], None, ""
    for line in lines:
        if line.occurred is not last:
            last, occurred = line.occurred, line.occurred.isoformat()
        found.append(
            {
                "Sequence": line.sequence,
                "Category": line.category,
                "Text": line.text,
                "Occurred": occurred,
                "NodeId": line.node_id,
            }
        )
    return found


def node_json(node) -> dict:
    return {
        "Id": node.pk,
        "ParentId": node.parent_id,
        "Name": node.name,
        "Status": node.status,
        "Started": node.started.isoformat() if node.started else None,
        "Ended": node.ended.isoformat() if node.ended else None,
        "Progress": node.progress,
    }


def _append(task_id: int, entries: list[dict], ttl: int = STREAM_TTL, final: bool = False, new: bool = False) -> None:
    """Appends the entries, in one round trip, once the surrounding transaction commits (at once outside one):
    a reader never sees a line or a state that storage could still roll back. `new`: to a new stream."""
    transaction.on_commit(lambda: _xadd(task_id, entries, ttl, final, new))


def _xadd(task_id: int, entries: list[dict], ttl: int, final: bool = False, new: bool = False) -> None:
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        if new:  # ids start again in each database: a stream left under this id is another task's
            pipe.delete(stream_key(task_id))
        for entry in entries:
            # The final state is all a stream keeps once its task ended: every line is stored, and a viewer
            # that had not read them yet catches up from storage (and gets the tree again with the state).
            pipe.xadd(stream_key(task_id), entry, maxlen=1 if final else STREAM_MAXLEN, approximate=not final)
        pipe.expire(stream_key(task_id), ttl)
        pipe.execute()
    except redis.RedisError as error:
        # Storage has the lines; readers catch up from there. Live viewers lag until Redis is back.
        log.warning("Could not append to the live log of task %s: %s", task_id, error)


def publish(task, lines=None, nodes=()) -> None:
    """TaskLog's publish hook: called after each stored batch, and on each change of nodes."""
    if lines:
        # first/last/nodes let a viewer right at `first` forward `data` as it is, without decoding it.
        _append(
            task.pk,
            [
                {
                    "kind": "lines",
                    "data": json.dumps(lines_json(lines)),
                    "first": lines[0].sequence,
                    "last": lines[-1].sequence,
                    "nodes": ",".join(str(n) for n in {line.node_id for line in lines} if n is not None),
                }
            ],
        )
    if nodes:
        _append(task.pk, [{"kind": "node", "data": json.dumps(node_json(node))} for node in nodes])


def publish_state(task, *, new_stream: bool = False) -> None:
    """`new_stream`: the task's first run starts its stream (before this state, which viewers must see)."""
    state = {
        "State": task.state,
        "IsCompleted": task.is_completed,
        "ErrorMessage": task.error_message,
        "HasWarnings": task.has_warnings,
    }
    _append(
        task.pk,
        [{"kind": "state", "data": json.dumps(state)}],
        ttl=FINISHED_TTL if task.is_completed else STREAM_TTL,
        final=task.is_completed,
        new=new_stream,
    )


def forget(task_id: int) -> None:
    """A new log starts with a new stream (ids can repeat across databases sharing one Redis)."""
    try:
        redis_client().delete(stream_key(task_id))
    except redis.RedisError as error:
        log.warning("Could not reset the live log of task %s: %s", task_id, error)
