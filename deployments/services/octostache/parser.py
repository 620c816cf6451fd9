"""Parsing a template into text, substitutions, conditionals and loops."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Text:
    text: str


@dataclass
class Substitution:
    raw: str  # as written, `#{…}` included: echoed when it cannot be evaluated
    expression: str


@dataclass
class Conditional:
    raw: str
    expression: str
    negate: bool
    then: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


@dataclass
class Loop:
    raw: str
    name: str
    collection: str
    body: list = field(default_factory=list)


_EACH = re.compile(r"^each\s+([^\s]+)\s+in\s+(.+)$", re.IGNORECASE | re.DOTALL)
_IF = re.compile(r"^(if|unless)\s+(.+)$", re.IGNORECASE | re.DOTALL)


def closing_brace(template: str, start: int) -> int:
    """Index of the `}` closing the `#{` at `start`, counting nested `#{…}`; -1 if none."""
    depth, i = 0, start
    while i < len(template):
        if template.startswith("#{", i):
            depth += 1
            i += 2
            continue
        if template[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _tokens(template: str):
    """Text and `#{…}` tokens, in order; `##{` is an escaped `#{`."""
    i, text = 0, []
    while i < len(template):
        at = template.find("#{", i)
        if at < 0:
            text.append(template[i:])
            break
        if at > 0 and template[at - 1] == "#" and (at < 2 or template[at - 2] != "#"):
            text.append(template[i : at - 1] + "#{")  # `##{` → a literal `#{`
            i = at + 2
            continue
        end = closing_brace(template, at)
        if end < 0:
            text.append(template[i:])
            break
        text.append(template[i:at])
        if text:
            yield Text("".join(text))
            text = []
        yield template[at : end + 1]
        i = end + 1
    if text:
        yield Text("".join(text))


def parse(template: str) -> list:
    """A tree of Text, Substitution, Conditional and Loop nodes. An unbalanced block tag stays text."""
    root: list = []
    stack: list[tuple[object, list]] = []  # (block, the list being filled)
    current = root
    for token in _tokens(template):
        if isinstance(token, Text):
            current.append(token)
            continue
        inner = token[2:-1].strip()
        lowered = inner.lower()
        match_if, match_each = _IF.match(inner), _EACH.match(inner)
        if match_if and "|" not in match_if.group(1):
            block = Conditional(token, match_if.group(2).strip(), match_if.group(1).lower() == "unless")
            current.append(block)
            stack.append((block, current))
            current = block.then
        elif match_each:
            block = Loop(token, match_each.group(1), match_each.group(2).strip())
            current.append(block)
            stack.append((block, current))
            current = block.body
        elif lowered == "else" and stack and isinstance(stack[-1][0], Conditional) and current is stack[-1][0].then:
            current = stack[-1][0].otherwise
        elif lowered in ("/if", "/unless") and stack and isinstance(stack[-1][0], Conditional):
            _, current = stack.pop()
        elif lowered == "/each" and stack and isinstance(stack[-1][0], Loop):
            _, current = stack.pop()
        else:
            current.append(Substitution(token, inner))
    while stack:  # unclosed blocks: their tag is text, their body stays in place
        block, parent = stack.pop()
        index = parent.index(block)
        body = (
            block.body
            if isinstance(block, Loop)
            else block.then + ([Text("#{else}")] if block.otherwise else []) + block.otherwise
        )
        parent[index : index + 1] = [Text(block.raw), *body]
    return root
