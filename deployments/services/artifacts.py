"""Artifact names: a single safe file name, or the artifact is refused with a reason in the task log.

A script names its artifacts (`new_octopusartifact path name`); the name ends up in a download's
Content-Disposition and in log lines, so a path (`../../etc/passwd`), a separator or a control character (a
newline forges a log line, and broke the download with a 500) is refused, not stored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

MAX_NAME_LENGTH = 200  # Artifact.name
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")  # would make "txt.exe" read as "exe.txt"


def artifact_name_problem(name) -> str | None:
    """Why `name` is not a single safe file name, or None."""
    if not isinstance(name, str) or not name.strip():
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if "/" in name or "\\" in name:
        return "it holds a path separator: give a file name, not a path"
    if ".." in name:
        return "it holds '..'"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name) or _BIDI_CONTROLS.search(name):
        return "it holds control characters"
    if name != name.strip():
        return "it starts or ends with white space"
    return None


def accepted_artifacts(artifacts: Iterable[dict], *, warn: Callable[[str], object]) -> Iterable[dict]:
    """The artifacts whose names are safe; each refused one is one warning line saying why (the name escaped)."""
    for artifact in artifacts:
        name = artifact.get("Name")
        if problem := artifact_name_problem(name):
            shown = repr(name)[: MAX_NAME_LENGTH + 10] if isinstance(name, str) else "(no name)"
            warn(f"The artifact {shown} was not collected: {problem}.")
            continue
        yield artifact


def download_name(name: str) -> str:
    """A name safe for a Content-Disposition header, even for an artifact stored before names were checked."""
    cleaned = "".join("_" if unicodedata.category(ch) in ("Cc", "Cs") or ch in '/\\"' else ch for ch in name)
    cleaned = _BIDI_CONTROLS.sub("_", cleaned).replace("..", "_").strip() or "artifact"
    return cleaned[:MAX_NAME_LENGTH]
