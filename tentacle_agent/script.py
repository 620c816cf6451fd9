"""One script's state and output: its lines numbered, masked and bounded in memory, read by long polls."""

from __future__ import annotations

import base64
import datetime
import re
import subprocess
import threading
import time
from operator import itemgetter
from pathlib import Path

MASK = "********"
MAX_LINE = 64 * 1024  # bytes of one line kept; the rest of it is discarded up to its newline
TRUNCATED = " …(line truncated)"
MAX_LINES_PER_STATUS = 5000
MAX_UNFETCHED_BYTES = 16 * 1024 * 1024
MAX_UNFETCHED_LINES = 50_000
KEEP_FETCHED_LINES = 10_000
SERVICE_MESSAGE = re.compile(r"^##octopus\[([\w-]+)((?:\s+\w+='[^']*')*)\s*\]\s*$")
ATTRIBUTE = re.compile(r"(\w+)='([^']*)'")


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value.encode(), validate=True).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


MIN_SECRET_LINE = 4


def secret_forms(value: str) -> set[str]:
    """What to mask for one sensitive value: the value, and each non-blank line of a multi-line one
    (output is split into lines, so a multi-line secret only ever shows up line by line). Lines of
    fewer than MIN_SECRET_LINE visible characters (a JSON `}`, a PEM's `-----`) are no secret on their
    own, and masking them would blank every such line of the log."""
    forms = {value} if value else set()
    for line in value.splitlines():
        line = line.rstrip("\r")
        if len(line.strip()) >= MIN_SECRET_LINE:
            forms.add(line)
    return forms


class PipeBuffer:
    """One pipe's partial line: at most MAX_LINE bytes are held; past that the line is cut."""

    def __init__(self, name: str):
        self.name = name
        self.buffer = bytearray()
        self.discarding = False


class Script:
    def __init__(self, ticket: str, request: dict, work: Path):
        self.ticket = ticket
        self.request = request
        self.work = work
        self.state = "Pending"
        self.exit_code: int | None = None
        self.failure_message: str | None = None
        self.lines: list[dict] = []
        self.first_sequence = 0  # the Sequence of lines[0]: fetched lines past KEEP_FETCHED_LINES are dropped
        self.next_sequence = 0
        self.fetched_through = -1  # the caller asked for lines after this one, so it has all up to it
        self.unfetched_bytes = 0
        self.output_variables: list[dict] = []
        self.artifacts: list[dict] = []
        self.condition = threading.Condition()
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.finished_at: float | None = None
        self.lock_file: int | None = None
        values: set[str] = set()
        for variable in request.get("Variables") or []:
            if variable.get("IsSensitive"):
                values |= secret_forms(str(variable.get("Value", "")))
        self.sensitive = sorted(values, key=len, reverse=True)
        self.category = {"stdout": "Info", "stderr": "Error"}

    def add_sensitive(self, value: str) -> None:
        self.sensitive = sorted(set(self.sensitive) | secret_forms(value), key=len, reverse=True)

    def mask(self, text: str) -> str:
        for value in self.sensitive:
            text = text.replace(value, MASK)
        return text

    def _line(self, stream: str, text: str, category: str | None, truncated: bool) -> dict:
        text = self.mask(text)
        if truncated or len(text) > MAX_LINE:
            # A secret cut by the end of what was kept would show its first characters: drop them.
            for value in self.sensitive:
                for size in range(min(len(value) - 1, len(text)), 0, -1):
                    if text.endswith(value[:size]):
                        text = text[:-size]
                        break
            text = text[:MAX_LINE] + TRUNCATED
        line = {
            "Sequence": self.next_sequence,
            "Time": _now(),
            "Stream": stream,
            "Category": category or self.category[stream],
            "Text": text,
        }
        self.next_sequence += 1
        self.unfetched_bytes += len(text)
        return line

    def add_line(self, stream: str, text: str, category: str | None = None, truncated: bool = False) -> None:
        with self.condition:
            self.lines.append(self._line(stream, text, category, truncated))
            self.condition.notify_all()

    def add_lines(self, lines: list[tuple[str, str, str | None, bool]]) -> None:
        if not lines:
            return
        with self.condition:
            for stream, text, category, truncated in lines:
                self.lines.append(self._line(stream, text, category, truncated))
            self.condition.notify_all()

    def add_texts(self, stream: str, texts: list[str]) -> None:
        """Whole lines of one stream in its current category (hot path: every line a script prints)."""
        with self.condition:
            now, category, sequence = _now(), self.category[stream], self.next_sequence
            if self.sensitive:
                texts = [self.mask(text) for text in texts]
            for text in texts:
                if len(text) > MAX_LINE:  # a mask made it longer than a line may be
                    self.lines.append(self._line(stream, text, None, False))
                    sequence = self.next_sequence
                    continue
                self.lines.append(
                    {"Sequence": sequence, "Time": now, "Stream": stream, "Category": category, "Text": text}
                )
                sequence += 1
                self.unfetched_bytes += len(text)
                self.next_sequence = sequence
            self.condition.notify_all()

    def has_room(self) -> bool:
        return (
            self.unfetched_bytes < MAX_UNFETCHED_BYTES
            and self.next_sequence - 1 - self.fetched_through < MAX_UNFETCHED_LINES
        )

    def acknowledge(self, after: int) -> None:
        """The caller has every line up to `after`: they stop counting against the unfetched bound, and
        beyond the last KEEP_FETCHED_LINES they are forgotten. Call with the condition held."""
        after = min(after, self.next_sequence - 1)
        if after <= self.fetched_through:
            return
        start = max(self.fetched_through + 1, self.first_sequence) - self.first_sequence
        stop = after + 1 - self.first_sequence
        self.unfetched_bytes -= sum(map(len, map(itemgetter("Text"), self.lines[start:stop])))
        self.fetched_through = after
        drop = min(len(self.lines) - KEEP_FETCHED_LINES, after + 1 - self.first_sequence)
        if drop > 0:
            del self.lines[:drop]
            self.first_sequence += drop
        self.condition.notify_all()

    def finish(self, exit_code: int | None, failure: str | None = None) -> None:
        with self.condition:
            self.exit_code = exit_code
            if failure and not self.failure_message:
                self.failure_message = failure
            self.state = "Complete"
            self.finished_at = time.monotonic()
            self.condition.notify_all()

    def snapshot(self, after: int) -> dict:
        start = max(0, after + 1, self.first_sequence)
        index = start - self.first_sequence
        logs = self.lines[index : index + MAX_LINES_PER_STATUS]
        return {
            "Ticket": self.ticket,
            "State": self.state,
            "ExitCode": self.exit_code,
            "Logs": logs,
            "NextSequence": start + len(logs),
            "HasMore": start + len(logs) < self.next_sequence,
            "OutputVariables": list(self.output_variables),
            "Artifacts": list(self.artifacts),
            "FailureMessage": self.failure_message,
        }

    def feed(self, stream: PipeBuffer, chunk: bytes) -> None:
        """Split a chunk into lines; a line is cut at MAX_LINE bytes and the rest of it dropped."""
        head, newline, rest = chunk.partition(b"\n")
        if stream.discarding or len(chunk) > MAX_LINE or len(stream.buffer) + len(head) > MAX_LINE:
            self._feed_line_by_line(stream, chunk)  # a line to cut: no line here is longer than MAX_LINE otherwise
            return
        if not newline:
            stream.buffer += head
            return
        complete, newline, partial = rest.rpartition(b"\n")
        text = (bytes(stream.buffer) + head + (b"\n" + complete if newline else b"")).decode("utf-8", errors="replace")
        stream.buffer = bytearray(partial)
        texts = text.split("\n")
        if "\r" in text:
            texts = [line.rstrip("\r") for line in texts]
        if stream.name == "stdout" and "##octopus[" in text:  # service messages change what follows them
            lines: list = []
            for line in texts:
                self._take_line(stream.name, line, lines)
            self.add_lines(lines)
        else:
            self.add_texts(stream.name, texts)

    def _feed_line_by_line(self, stream: PipeBuffer, chunk: bytes) -> None:
        lines: list[tuple[str, str, str | None, bool]] = []
        start = 0
        while start < len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            if not stream.discarding:
                stream.buffer += chunk[start : min(end, start + MAX_LINE + 1 - len(stream.buffer))]
                if len(stream.buffer) > MAX_LINE:
                    lines.append((stream.name, stream.buffer[:MAX_LINE].decode("utf-8", errors="replace"), None, True))
                    stream.buffer = bytearray()
                    stream.discarding = newline < 0
                elif newline >= 0:
                    self._take_line(stream.name, stream.buffer.decode("utf-8", errors="replace").rstrip("\r"), lines)
                    stream.buffer = bytearray()
            elif newline >= 0:
                stream.discarding = False
            if newline < 0:
                break
            start = newline + 1
        self.add_lines(lines)

    def _take_line(self, stream: str, text: str, lines: list) -> None:
        match = SERVICE_MESSAGE.match(text) if stream == "stdout" else None
        if match:
            self.add_lines(lines)  # lines before a category change keep the category they had
            lines.clear()
            self.service_message(match.group(1), dict(ATTRIBUTE.findall(match.group(2))))
        else:
            lines.append((stream, text, None, False))

    def service_message(self, name: str, attributes: dict) -> None:
        """`##octopus[name attribute='base64' …]`: a category change, an output variable, an artifact, a failure,
        progress."""
        categories = {
            "stdout-warning": "Warning",
            "stdout-highlight": "Highlight",
            "stdout-verbose": "Verbose",
            "stdout-default": "Info",
            "stdout-error": "Error",
            "stdout-wait": "Wait",
        }
        if name in categories:
            self.category["stdout"] = categories[name]
        elif name == "setVariable":
            value, sensitive = _decode(attributes.get("value", "")), _decode(attributes.get("sensitive", "")) == "True"
            if sensitive and value:
                self.add_sensitive(value)
            self.output_variables.append(
                {"Name": _decode(attributes.get("name", "")), "Value": value, "IsSensitive": sensitive}
            )
        elif name == "createArtifact":
            path = (self.work / _decode(attributes.get("path", ""))).resolve()
            # The name is shown on the task page: masked like a log line.
            self.artifacts.append(
                {
                    "Name": self.mask(_decode(attributes.get("name", "")) or path.name),
                    "Path": str(path),
                    "Length": path.stat().st_size if path.is_file() else 0,
                }
            )
        elif name == "stepFailed":
            # Reported once, as the step's failure message (the server logs it), not also as a line here.
            self.failure_message = self.mask(_decode(attributes.get("message", ""))) or "The step failed."
        elif name == "progress":
            try:
                percentage = max(0, min(100, int(_decode(attributes.get("percentage", "")).strip())))
            except ValueError:
                return
            with self.condition:  # re-entrant: the line and its percentage appear to readers together
                self.add_line("stdout", _decode(attributes.get("message", "")), "Progress")
                self.lines[-1]["Percentage"] = percentage
