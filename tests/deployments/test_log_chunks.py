"""Task logs stored as chunks: what a script prints comes back exactly, in order, once, through every reader
(`/details` after/take/tail, the raw download, the websocket's catch-up) however the lines fall into chunks."""

from __future__ import annotations

import zlib
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from servertasks.models import ServerTask, TaskLogChunk, TaskLogLine
from servertasks.services import logstore, logstream
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import apply_log_retention, finish_server_task

pytestmark = pytest.mark.django_db

Category = TaskLogLine.Category


def new_task(space, state="Executing") -> ServerTask:
    return ServerTask.objects.create(space=space, name="AdHocScript", description="Prints", state=state)


def stored_texts(task) -> list[str]:
    return [line.text for line in logstore.iter_lines(task_id=task.pk)]


def chunk_bytes(chunk: TaskLogChunk) -> bytes:
    return zlib.decompress(bytes(chunk.data)) if chunk.compressed else bytes(chunk.data)


def test_a_long_log_is_a_few_chunks_and_reads_back_exactly(space):
    task = new_task(space)
    log = TaskLog(task)
    step = log.node("Step 1: Print")
    expected = [f"line {n} " + "x" * (n % 50) for n in range(20_000)]
    for text in expected:
        log.write(text, node=step)
    log.flush()
    chunks = list(TaskLogChunk.objects.filter(task=task).order_by("first_sequence"))
    assert len(chunks) < 200, "a row per flush at most, not a row per line"
    assert [(c.first_sequence, c.last_sequence) for c in chunks] == list(
        zip([0, *[c.last_sequence + 1 for c in chunks[:-1]]], [c.last_sequence for c in chunks], strict=True)
    )  # no hole, no overlap
    assert all(c.line_count <= logstore.CHUNK_LINES for c in chunks)
    assert all(c.compressed for c in chunks if c.line_count >= 50), "repetitive text is stored compressed"
    assert stored_texts(task) == expected
    assert logstore.line_count(task.pk) == 20_000 and logstore.last_sequence(task.pk) == 19_999


def test_chunks_close_at_their_size_and_at_a_change_of_node(space):
    task = new_task(space)
    log = TaskLog(task)
    first, second = log.node("Step 1"), log.node("Step 2")
    wide = "y" * 1000
    for n in range(200):  # 200 KB of text in one flush: more than three chunks' worth
        log.write(f"{n} {wide}", node=first)
    log.write("on the second step", node=second)
    log.write("back on the first", node=first)
    log.flush()
    chunks = list(TaskLogChunk.objects.filter(task=task).order_by("first_sequence"))
    assert [c.node_id for c in chunks[-2:]] == [second.pk, first.pk]
    first_step_chunks = [c for c in chunks[:-2]]
    assert len(first_step_chunks) >= 3 and all(c.node_id == first.pk for c in first_step_chunks)
    assert all(len(chunk_bytes(c)) < logstore.CHUNK_BYTES + 14 * c.line_count + 2000 for c in first_step_chunks)
    assert stored_texts(task) == [f"{n} {wide}" for n in range(200)] + ["on the second step", "back on the first"]
    assert [line.node_id for line in logstore.read_lines(task_id=task.pk, after=199)] == [second.pk, first.pk]


def test_a_line_longer_than_a_chunk_is_kept_whole(space):
    task = new_task(space)
    log = TaskLog(task)
    huge = "".join(chr(0x41 + n % 26) for n in range(300_000))
    log.write("before")
    log.write(huge)
    log.write("after")
    log.flush()
    assert stored_texts(task) == ["before", huge, "after"]
    assert [len(line.text) for line in logstore.read_lines(task_id=task.pk, after=0, limit=1)] == [300_000]


def test_nul_bytes_invalid_utf8_and_every_category_survive_storage(space):
    task = new_task(space)
    log = TaskLog(task)
    undecodable = b"bad \xff\xfe bytes".decode("utf-8", "surrogateescape")  # how a raw read keeps invalid UTF-8
    log.write("binary \x00 output", Category.WARNING)
    log.write(undecodable, Category.ERROR)
    log.write(b"replaced \xff".decode("utf-8", "replace"), Category.FATAL)
    log.write("ünïcødé ✓ 𝄞", Category.HIGHLIGHT)
    log.write("", Category.VERBOSE)
    log.flush()
    lines = logstore.read_lines(task_id=task.pk)
    assert [(line.category, line.text) for line in lines] == [
        (Category.WARNING, "binary \ufffd output"),
        (Category.ERROR, "bad \ufffd\ufffd bytes"),
        (Category.FATAL, "replaced \ufffd"),
        (Category.HIGHLIGHT, "ünïcødé ✓ 𝄞"),
        (Category.VERBOSE, ""),
    ]


def test_when_each_line_occurred_is_kept_to_the_microsecond(space):
    task = new_task(space)
    log = TaskLog(task)
    moments = [
        timezone.now() - timedelta(days=400, microseconds=7),
        timezone.now(),
        timezone.now() + timedelta(seconds=1),
    ]
    for n, moment in enumerate(moments):
        log.write(f"at {n}", occurred=moment)
    log.flush()
    assert [line.occurred for line in logstore.read_lines(task_id=task.pk)] == moments


def test_secrets_are_masked_before_storage_even_across_lines(space):
    task = new_task(space)
    log = TaskLog(task, sensitive_values=["hunter2", "multi\nline secret"])
    log.write("the password is hunter2")
    log.write("a multi\nline secret in the output")
    log.write("ok " * 400 + "hunter2")  # long enough to be compressed: the secret is not in the zlib stream either
    log.flush()
    assert stored_texts(task) == ["the password is ********", "a ******** in the output", "ok " * 400 + "********"]
    for chunk in TaskLogChunk.objects.filter(task=task):
        assert b"hunter2" not in chunk_bytes(chunk) and b"line secret" not in chunk_bytes(chunk)


def test_a_warning_or_error_marks_its_node_only(space):
    task = new_task(space)
    log = TaskLog(task)
    quiet, noisy, failing = log.node("Quiet"), log.node("Noisy"), log.node("Failing")
    log.write("fine", node=quiet)
    log.write("careful", Category.WARNING, node=noisy)
    log.write("broken", Category.ERROR, node=failing)
    log.flush()
    assert [logstore.node_has_warnings(n) for n in (quiet, noisy, failing)] == [False, True, True]


def test_details_after_take_and_tail_cross_chunk_boundaries(api_client, administrator, space):
    task = new_task(space)
    log = TaskLog(task)
    first, second = log.node("Step 1"), log.node("Step 2")
    for n in range(3000):  # flushed in small batches: many chunks, the two steps interleaved
        log.write(f"line {n}", node=first if (n // 70) % 2 == 0 else second)
        if n % 130 == 0:
            log.flush()
    log.flush()
    finish_server_task(task=task, state="Success")
    assert TaskLogChunk.objects.filter(task=task).count() > 40
    client = api_client(administrator)

    def elements(query: str) -> dict[str, list[int]]:
        details = client.get(f"/api/tasks/{task.octopus_id}/details?{query}").json()
        return {root["Name"]: [e["Sequence"] for e in root["LogElements"]] for root in details["ActivityLogs"]}

    seen, after = [], -1
    while page := sorted(s for sequences in elements(f"after={after}&take=333").values() for s in sequences):
        assert len(page) <= 333 and page[0] == after + 1
        seen.extend(page)
        after = page[-1]
    assert seen == list(range(3000))
    tails = elements("tail=100")
    assert tails["Step 1"] == [n for n in range(3000) if (n // 70) % 2 == 0][-100:]
    assert tails["Step 2"] == [n for n in range(3000) if (n // 70) % 2 == 1][-100:]
    assert elements("tail=5&after=2990") == {
        "Step 1": [2995, 2996, 2997, 2998, 2999],
        "Step 2": [],
    }  # 2940–3009 are Step 1's
    raw = b"".join(client.get(f"/api/tasks/{task.octopus_id}/raw").streaming_content).decode().splitlines()
    assert [row.split("  Info      ")[1] for row in raw] == [f"line {n}" for n in range(3000)]


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    batches=st.lists(
        st.tuples(st.integers(min_value=1, max_value=500), st.integers(min_value=0, max_value=2)),
        min_size=1,
        max_size=6,
    ),
    resume_at=st.lists(st.integers(min_value=-1, max_value=3000), max_size=3),
    take=st.integers(min_value=60, max_value=900),
    tail=st.integers(min_value=0, max_value=900),
)
def test_resuming_after_any_sequence_gives_exactly_the_rest_in_order(space, batches, resume_at, take, tail):
    """The property the websocket's reconnect and the polling fallback rest on, on chunked storage:
    paging from any cursor with any page size yields every later line once, in order."""
    task = new_task(space)
    log = TaskLog(task)
    nodes = [None, log.node("Step 1"), log.node("Step 2")]
    written: list[tuple[int, int | None]] = []
    for size, node_index in batches:
        node = nodes[node_index]
        for _ in range(size):
            written.append((log.next_sequence, node.pk if node else None))
            log.write(f"line {log.next_sequence}", node=node)
        log.flush()
    total = len(written)
    for after in [-1, *resume_at]:
        received, cursor = [], after
        while page := logstore.read_lines(task_id=task.pk, after=cursor, limit=take):
            assert len(page) <= take
            received.extend(line.sequence for line in page)
            cursor = page[-1].sequence
        assert received == list(range(max(after, -1) + 1, total))
    for node in nodes:
        node_id = node.pk if node else None
        expected = [s for s, n in written if n == node_id][-tail:] if tail else []
        got = logstore.tail_lines(task_id=task.pk, node_id=node_id, count=tail)
        assert [line.sequence for line in got] == expected
        assert all(line.text == f"line {line.sequence}" for line in got)


def test_retention_deletes_every_chunk_of_an_old_log_and_its_live_stream(space, settings):
    settings.REEF_TASK_LOG_RETENTION_DAYS = 30
    old = new_task(space, state="Success")
    recent = new_task(space, state="Success")
    for task in (old, recent):
        log = TaskLog(task)
        for n in range(5000):
            log.write(f"line {n}")
        log.flush()
    ServerTask.objects.filter(pk=old.pk).update(completed=timezone.now() - timedelta(days=31))
    ServerTask.objects.filter(pk=recent.pk).update(completed=timezone.now())
    logstream.publish_state(old)
    assert TaskLogChunk.objects.filter(task=old).count() > 1
    assert apply_log_retention() == 5000
    assert not TaskLogChunk.objects.filter(task=old).exists() and logstore.line_count(recent.pk) == 5000
    assert logstore.read_lines(task_id=old.pk) == [] and ServerTask.objects.filter(pk=old.pk).exists()
    from portal.redis import redis_client

    assert not redis_client().exists(logstream.stream_key(old.pk))
    assert apply_log_retention() == 0


@pytest.mark.django_db(transaction=True)
def test_the_live_stream_keeps_only_its_newest_entries_and_expires_after_its_task(space):
    from portal.redis import redis_client

    task = new_task(space)
    log = TaskLog(task)
    for n in range(800):
        log.write(f"line {n}")
        log.flush()  # an entry per line: far more entries than the stream keeps
    client = redis_client()
    key = logstream.stream_key(task.pk)
    assert client.xlen(key) <= 3 * logstream.STREAM_MAXLEN
    assert client.ttl(key) > logstream.FINISHED_TTL
    finish_server_task(task=task, state="Success")
    assert 0 < client.ttl(key) <= logstream.FINISHED_TTL
    assert [fields[b"kind"] for _, fields in client.xrange(key)] == [b"state"]  # every line is in storage
    assert logstore.line_count(task.pk) == 800


FULL = logstore.CHUNK_BYTES
# (length, how many lines of it): short lines in numbers that fill a chunk, long ones around its size
LINES = st.one_of(
    st.tuples(st.integers(0, 40), st.sampled_from([1, 2, 3, logstore.CHUNK_LINES + 1])),
    st.tuples(st.sampled_from([FULL // 2, FULL - 1, FULL, FULL + 1]), st.just(1)),
)


@given(
    runs=st.lists(
        st.tuples(st.sampled_from([None, 1, 2]), st.booleans(), st.lists(LINES, min_size=1, max_size=4)),
        min_size=1,
        max_size=4,
    )
)
@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_batch_splits_into_full_chunks_only_where_it_must(runs):
    """However a flush's lines fall (node changes, skipped sequences, long and short lines), its chunks hold
    them all in order; each is one node's consecutive lines within the limits; a chunk ends early only at a
    change of node or a skipped sequence."""
    batch, sequence = [], 0
    for node, skip, lengths in runs:
        sequence += 2 if skip else 0
        for length, count in lengths:
            for _ in range(count):
                batch.append(TaskLogLine.of(1, node, sequence, timezone.now(), Category.INFO, "x" * length))
                sequence += 1
    chunks = logstore.chunk_lines(batch)
    assert [line for chunk in chunks for line in chunk] == batch
    for chunk in chunks:
        assert len({line.node_id for line in chunk}) == 1
        assert [line.sequence for line in chunk] == list(range(chunk[0].sequence, chunk[-1].sequence + 1))
        assert len(chunk) <= logstore.CHUNK_LINES
        assert sum(len(line.text) for line in chunk[:-1]) < logstore.CHUNK_BYTES
    for chunk, following in zip(chunks, chunks[1:], strict=False):
        if following[0].node_id == chunk[-1].node_id and following[0].sequence == chunk[-1].sequence + 1:
            assert len(chunk) == logstore.CHUNK_LINES or sum(len(line.text) for line in chunk) >= logstore.CHUNK_BYTES
