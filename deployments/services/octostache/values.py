"""Symbols, JSON paths into values, and what a loop variable stands for."""

from __future__ import annotations

import decimal
import json
import re
from dataclasses import dataclass

# Symbols and JSON paths ----------------------------------------------------------------------------


def split_head(symbol: str) -> tuple[str, str]:
    """`a.Name` → (`a`, `.Name`); `a[x].y` → (`a`, `[x].y`)."""
    for i, c in enumerate(symbol):
        if c in ".[":
            return symbol[:i], symbol[i:]
    return symbol, ""


def split_points(symbol: str) -> list[int]:
    """Where a variable name may end and a JSON path begin: before `.` or `[` outside brackets."""
    points, depth = [], 0
    for i, c in enumerate(symbol):
        if c == "[":
            if depth == 0 and i > 0:
                points.append(i)
            depth += 1
        elif c == "]":
            depth = max(0, depth - 1)
        elif c == "." and depth == 0 and i > 0:
            points.append(i)
    return points


def path_keys(path: str) -> list[str] | None:
    """`.Sizes[0].price` or `.[Sizes][0][price]` → ["Sizes", "0", "price"]."""
    keys, i = [], 0
    while i < len(path):
        if path[i] == ".":
            i += 1
            continue
        if path[i] == "[":
            end = path.find("]", i)
            if end < 0:
                return None
            keys.append(path[i + 1 : end])
            i = end + 1
            continue
        end = i
        while end < len(path) and path[end] not in ".[":
            end += 1
        keys.append(path[i:end])
        i = end
    return keys


def navigate(value, keys: list[str]):
    for key in keys:
        if isinstance(value, dict):
            match = next((k for k in value if k == key), None)
            if match is None:
                match = next((k for k in value if k.lower() == key.lower()), None)
            if match is None:
                raise KeyError(key)
            value = value[match]
        elif isinstance(value, list):
            try:
                value = value[int(key)]
            except (ValueError, IndexError):
                raise KeyError(key) from None
        else:
            raise KeyError(key)
    return value


def parse_json(text: str):
    """A JSON object or array, or None. Keys without quotes and single quotes are accepted, as Octostache does."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped, parse_float=decimal.Decimal)
    except ValueError:
        pass
    lenient = re.sub(r"'((?:[^'\\]|\\.)*)'", lambda m: json.dumps(m.group(1)), stripped)
    lenient = re.sub(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', lenient)
    try:
        return json.loads(lenient, parse_float=decimal.Decimal)
    except ValueError:
        return None


def text_of(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, decimal.Decimal):
        return str(value)  # as written: 15.00 stays 15.00
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    return json.dumps(value)


def json_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return text_of(value)


# Bindings of a loop variable ------------------------------------------------------------------------


@dataclass
class Alias:  # an item of an indexed collection: `x` stands for `Octopus.Action[key]`
    path: str
    key: str


@dataclass
class Item:  # an item of a list or JSON value
    value: object
    tainted: bool


class Unknown(Exception):
    """The symbol names no variable: the expression is echoed as written."""
