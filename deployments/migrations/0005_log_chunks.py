"""Task logs in chunks: every stored TaskLogLine row becomes part of a TaskLogChunk, in the format of
deployments.services.logstore (frozen here, since a migration must not change with the code), and the
line table goes. Reversible: chunks are split back into rows."""

import struct
import zlib
from datetime import datetime, timedelta, timezone
from itertools import accumulate

import django.db.models.deletion
from django.db import migrations, models

CATEGORIES = ("Verbose", "Info", "Highlight", "Wait", "Warning", "Error", "Fatal")
CODES = {category: code for code, category in enumerate(CATEGORIES)}
CHUNK_BYTES, CHUNK_LINES = 64 * 1024, 4096
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _encode(rows):
    """rows: (sequence, node_id, occurred, category, text) with consecutive sequences and one node."""
    texts = [text.encode("utf-8", "replace") for _, _, _, _, text in rows]
    raw = b"".join((struct.pack(f"<{len(rows)}q", *[(row[2] - EPOCH) // timedelta(microseconds=1) for row in rows]),
                    bytes([CODES.get(row[3], 1) for row in rows]),
                    struct.pack(f"<{len(rows)}I", *accumulate(map(len, texts))), *texts))
    packed = zlib.compress(raw, 1) if len(raw) >= 512 else raw
    compressed = len(packed) < len(raw) * 0.9
    return {"node_id": rows[0][1], "first_sequence": rows[0][0], "last_sequence": rows[-1][0], "compressed": compressed,
            "data": packed if compressed else raw, "has_warnings": any(row[3] in ("Warning", "Error") for row in rows)}


def lines_to_chunks(apps, schema_editor):
    TaskLogLine = apps.get_model("deployments", "TaskLogLine")
    TaskLogChunk = apps.get_model("deployments", "TaskLogChunk")
    pending = []

    def close(task_id, group):
        pending.append(TaskLogChunk(task_id=task_id, **_encode(group)))
        if len(pending) >= 100:
            TaskLogChunk.objects.bulk_create(pending)
            pending.clear()

    for task_id in TaskLogLine.objects.order_by().values_list("task_id", flat=True).distinct():
        group, size = [], 0
        rows = TaskLogLine.objects.filter(task_id=task_id).order_by("sequence").values_list(
            "sequence", "node_id", "occurred", "category", "text").iterator(chunk_size=5000)
        for row in rows:
            if group and (row[1] != group[-1][1] or row[0] != group[-1][0] + 1 or size >= CHUNK_BYTES or len(group) >= CHUNK_LINES):
                close(task_id, group)
                group, size = [], 0
            group.append(row)
            size += len(row[4])
        if group:
            close(task_id, group)
    TaskLogChunk.objects.bulk_create(pending)


def chunks_to_lines(apps, schema_editor):
    TaskLogLine = apps.get_model("deployments", "TaskLogLine")
    TaskLogChunk = apps.get_model("deployments", "TaskLogChunk")
    for chunk in TaskLogChunk.objects.order_by("task_id", "first_sequence").iterator(chunk_size=100):
        raw = zlib.decompress(bytes(chunk.data)) if chunk.compressed else bytes(chunk.data)
        count = chunk.last_sequence - chunk.first_sequence + 1
        times = struct.unpack_from(f"<{count}q", raw, 0)
        ends = struct.unpack_from(f"<{count}I", raw, 9 * count)
        starts = (0, *ends[:-1])
        text = raw[13 * count:]
        TaskLogLine.objects.bulk_create([
            TaskLogLine(task_id=chunk.task_id, node_id=chunk.node_id, sequence=chunk.first_sequence + n,
                        occurred=EPOCH + timedelta(microseconds=times[n]), category=CATEGORIES[raw[8 * count + n]],
                        text=text[starts[n]:ends[n]].decode("utf-8", "replace").replace("\x00", "\ufffd"))
            for n in range(count)])


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0004_server_nodes'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskLogChunk',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_sequence', models.PositiveIntegerField()),
                ('last_sequence', models.PositiveIntegerField()),
                ('has_warnings', models.BooleanField(default=False, help_text='a Warning or Error line is in this chunk')),
                ('compressed', models.BooleanField(default=False)),
                ('data', models.BinaryField()),
                ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='log_chunks', to='deployments.activitynode')),
                ('task', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='log_chunks', to='deployments.servertask')),
            ],
            options={
                'ordering': ['task', 'first_sequence'],
            },
        ),
        migrations.RunPython(lines_to_chunks, chunks_to_lines),
        migrations.DeleteModel(
            name='TaskLogLine',
        ),
        migrations.AddIndex(
            model_name='tasklogchunk',
            index=models.Index(fields=['task', 'last_sequence'], name='task_log_chunk_last'),
        ),
        migrations.AddConstraint(
            model_name='tasklogchunk',
            constraint=models.UniqueConstraint(fields=('task', 'first_sequence'), name='task_log_chunk_unique'),
        ),
    ]
