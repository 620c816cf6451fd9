"""Task log storage: a node's consecutive lines as one TaskLogChunk row, not a row per line.

A chunk's `data` is, before optional zlib compression:

    n × int64   when each line occurred, microseconds since the epoch (little-endian)
    n × uint8   its category (an index into CATEGORIES)
    n × uint32  the byte offset where its text ends
    the lines' UTF-8 text, back to back

where n = last_sequence - first_sequence + 1: a chunk's sequences have no holes. Writers call
`store_lines` once per flush (one INSERT); readers page through chunks by sequence with the index
(task, last_sequence), so `after`, `before`, `take` and `tail` never read a whole log.
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from operator import attrgetter

from django.db.models import F, Max, Sum

from servertasks.models import TaskLogChunk, TaskLogLine

Category = TaskLogLine.Category
# Append only: stored chunks refer to categories by position.
CATEGORIES = (
    Category.VERBOSE,
    Category.INFO,
    Category.HIGHLIGHT,
    Category.WAIT,
    Category.WARNING,
    Category.ERROR,
    Category.FATAL,
)
CODES = {str(category): code for code, category in enumerate(CATEGORIES)}
WARNING_CATEGORIES = frozenset({Category.WARNING, Category.ERROR})

CHUNK_BYTES = 64 * 1024  # a chunk closes past this much text …
CHUNK_LINES = 4096  # … or this many lines
COMPRESS_FROM = 512  # bytes: below this zlib costs more than it saves

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


# Writing ---------------------------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (undecodable bytes read with surrogateescape) becomes U+FFFD
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text).encode()


def encode_chunk(lines: list[TaskLogLine]) -> TaskLogChunk:
    """One chunk from lines of one node with consecutive sequences (hot path: every line of every task)."""
    texts = [line.text for line in lines]
    text = "".join(texts)
    if text.isascii():  # a character is a byte: one encode for the chunk
        data, ends = text.encode(), accumulate(map(len, texts))
    else:
        encoded = [_utf8(piece) for piece in texts]
        data, ends = b"".join(encoded), accumulate(map(len, encoded))
    count = len(lines)
    raw = b"".join(
        (
            struct.pack(f"<{count}q", *_microseconds(lines)),
            bytes([CODES.get(line.category, 1) for line in lines]),
            struct.pack(f"<{count}I", *ends),
            data,
        )
    )
    compressed = False
    if len(raw) >= COMPRESS_FROM:
        packed = zlib.compress(raw, 1)
        if len(packed) < len(raw) * 0.9:
            raw, compressed = packed, True
    first = lines[0]
    return TaskLogChunk(
        task_id=first.task_id,
        node_id=first.node_id,
        first_sequence=first.sequence,
        last_sequence=lines[-1].sequence,
        compressed=compressed,
        data=raw,
        has_warnings=any(line.category in WARNING_CATEGORIES for line in lines),
    )


def _microseconds(lines: list[TaskLogLine]) -> list[int]:
    """When each line occurred, in microseconds since the epoch; a batch's lines mostly share one time."""
    times, last, value = [], None, 0
    for line in lines:
        if line.occurred is not last:
            last = line.occurred
            value = (last - EPOCH) // ONE_MICROSECOND
        times.append(value)
    return times


def chunk_lines(batch: Iterable[TaskLogLine]) -> list[list[TaskLogLine]]:
    """Splits a batch where the node changes, a sequence is skipped, or a chunk is full."""
    batch = list(batch)
    sequences = list(map(attrgetter("sequence"), batch))
    if len(set(map(attrgetter("task_id", "node_id"), batch))) == 1 and sequences == list(
        range(sequences[0], sequences[0] + len(sequences))
    ):  # one node's consecutive lines, as a flush nearly always is: split where full (hot path)
        return _split_where_full(batch)
    return _chunk_line_by_line(batch)


def _split_where_full(lines: list[TaskLogLine]) -> list[list[TaskLogLine]]:
    """As _chunk_line_by_line for one run: a chunk takes another line while its text is under CHUNK_BYTES
    and it holds fewer than CHUNK_LINES lines."""
    before = list(accumulate(map(len, map(attrgetter("text"), lines)), initial=0))  # text before each line
    groups, start = [], 0
    while start < len(lines):
        stop = min(bisect_left(before, before[start] + CHUNK_BYTES, start + 1), start + CHUNK_LINES, len(lines))
        groups.append(lines[start:stop])
        start = stop
    return groups


def _chunk_line_by_line(batch: list[TaskLogLine]) -> list[list[TaskLogLine]]:
    groups: list[list[TaskLogLine]] = []
    current: list[TaskLogLine] = []
    size = 0
    for line in batch:
        if current and (
            line.node_id != current[-1].node_id
            or line.sequence != current[-1].sequence + 1
            or line.task_id != current[-1].task_id
            or size >= CHUNK_BYTES
            or len(current) >= CHUNK_LINES
        ):
            groups.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line.text)
    if current:
        groups.append(current)
    return groups


def store_lines(batch: list[TaskLogLine]) -> list[TaskLogChunk]:
    """Stores a flush's lines as chunks in one INSERT (all or nothing: no hole for readers to wait at)."""
    chunks = [encode_chunk(group) for group in chunk_lines(batch)]
    if chunks:
        TaskLogChunk.objects.bulk_create(chunks)  # a flush makes a few chunks: one statement
    return chunks


# Reading ---------------------------------------------------------------------------------------------


def decode_chunk(chunk: TaskLogChunk) -> list[TaskLogLine]:
    raw = bytes(chunk.data)
    if chunk.compressed:
        raw = zlib.decompress(raw)
    count = chunk.last_sequence - chunk.first_sequence + 1
    times = struct.unpack_from(f"<{count}q", raw, 0)
    codes = raw[8 * count : 9 * count]
    ends = struct.unpack_from(f"<{count}I", raw, 9 * count)
    text = memoryview(raw)[13 * count :]
    lines, start, first, task_id, node_id = [], 0, chunk.first_sequence, chunk.task_id, chunk.node_id
    occurred, micros = EPOCH, None
    for n in range(count):
        end = ends[n]
        if times[n] != micros:  # lines written together share one time, and one datetime here
            micros = times[n]
            occurred = EPOCH + timedelta(microseconds=micros)
        line_text = str(text[start:end], "utf-8", "replace")
        lines.append(TaskLogLine.of(task_id, node_id, first + n, occurred, CATEGORIES[codes[n]], line_text))
        start = end
    return lines


def _chunks(chunks, after: int, page: int = 4, largest_page: int = 64) -> Iterator[TaskLogChunk]:
    """Chunks holding sequences after `after`, in order, a few rows per query (each query uses the
    index (task, last_sequence); a reader that wants one page of lines never loads the whole log)."""
    while True:
        rows = list(chunks.filter(last_sequence__gt=after).order_by("last_sequence")[:page])  # chunks never overlap
        yield from rows
        if len(rows) < page:
            return
        after, page = rows[-1].last_sequence, min(page * 4, largest_page)


def iter_lines(*, task_id: int, after: int = -1, before: int | None = None) -> Iterator[TaskLogLine]:
    """Every stored line after `after` (and before `before`), in sequence order, streamed chunk by chunk."""
    chunks = TaskLogChunk.objects.filter(task_id=task_id)
    if before is not None:
        chunks = chunks.filter(first_sequence__lt=before)
    for chunk in _chunks(chunks, after):
        for line in decode_chunk(chunk):
            if line.sequence > after and (before is None or line.sequence < before):
                yield line


def read_lines(
    *, task_id: int, after: int = -1, before: int | None = None, limit: int | None = None
) -> list[TaskLogLine]:
    """Stored lines after `after`, at most `limit` of them."""
    lines = []
    for line in iter_lines(task_id=task_id, after=after, before=before):
        if limit is not None and len(lines) >= limit:
            break
        lines.append(line)
    return lines


def tail_lines(*, task_id: int, node_id: int | None, count: int, after: int = -1) -> list[TaskLogLine]:
    """The last `count` lines of one node (None: lines outside any node) after `after`, in order."""
    if count <= 0:
        return []
    chunks = TaskLogChunk.objects.filter(task_id=task_id, last_sequence__gt=after)
    chunks = chunks.filter(node__isnull=True) if node_id is None else chunks.filter(node_id=node_id)
    newest: list[TaskLogLine] = []
    page, before = 4, None
    while len(newest) < count:
        rows = chunks if before is None else chunks.filter(first_sequence__lt=before)
        rows = list(rows.order_by("-first_sequence")[:page])
        for chunk in rows:
            newest[:0] = [line for line in decode_chunk(chunk) if line.sequence > after]
            if len(newest) >= count:
                break
        if len(rows) < page:
            break
        before, page = rows[-1].first_sequence, min(page * 4, 64)
    return newest[-count:]


def raw_text(*, task_id: int) -> Iterator[str]:
    """The whole log as text, one piece per chunk, for a streamed download."""
    piece = []
    for line in iter_lines(task_id=task_id):
        piece.append(f"{line.occurred:%Y-%m-%d %H:%M:%S}  {line.category:<9} {line.text}\n")
        if len(piece) >= 1000:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)


def last_sequence(task_id: int) -> int | None:
    return TaskLogChunk.objects.filter(task_id=task_id).aggregate(m=Max("last_sequence"))["m"]


def line_count(task_id: int) -> int:
    total = TaskLogChunk.objects.filter(task_id=task_id).aggregate(n=Sum(F("last_sequence") - F("first_sequence") + 1))[
        "n"
    ]
    return total or 0


def has_log(task_id: int) -> bool:
    return TaskLogChunk.objects.filter(task_id=task_id).exists()


def node_has_warnings(node) -> bool:
    """A Warning or Error line was stored under this activity node (its step ends SuccessWithWarning)."""
    return TaskLogChunk.objects.filter(node=node, has_warnings=True).exists()


def delete_log(task_id: int) -> int:
    """Deletes a task's stored log; returns how many lines it held."""
    lines = line_count(task_id)
    TaskLogChunk.objects.filter(task_id=task_id).delete()
    return lines
