"""Evaluation: a VariableDictionary renders parsed templates against its variables, with nested references,
filters, conditionals and loops, and tracks what derives from sensitive values."""

from __future__ import annotations

import datetime
import re

from deployments.services.octostache.filters import FILTERS
from deployments.services.octostache.parser import Conditional, Loop, Substitution, Text, closing_brace, parse
from deployments.services.octostache.values import (
    Alias,
    Item,
    Unknown,
    navigate,
    parse_json,
    path_keys,
    split_head,
    split_points,
    text_of,
)

FALSE_WORDS = {"", "0", "no", "false"}
MAX_OUTPUT = 10 * 1024 * 1024  # a loop over a loop must not grow without bound…
MAX_ITERATIONS = 100_000  # …nor spin without output
MAX_DEPTH = 100  # variables referring to variables, this deep at most


class SubstitutionError(Exception):
    """A template that cannot be evaluated: a reference cycle, or output past the size limit."""


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in FALSE_WORDS


class VariableDictionary:
    """Variables (case-insensitive names) and the engine that evaluates templates against them.

    `sensitive`: the sensitive variables' values (or names); anything derived from them by a filter,
    a JSON path or a loop lands in `derived_sensitive`.
    """

    def __init__(
        self,
        values: dict[str, str],
        *,
        sensitive: set[str] | frozenset[str] = frozenset(),
        now: datetime.datetime | None = None,
    ):
        self.values: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for name, value in values.items():
            self.values[name.lower()] = "" if value is None else str(value)
            self.names[name.lower()] = name
        self.sensitive = {s for s in sensitive if s}
        self.derived_sensitive: set[str] = set()
        self.now = now
        self._resolving: list[str] = []
        self._cache: dict[str, tuple[str, bool]] = {}
        self._iterations = 0

    # Public ---------------------------------------------------------------------------------------

    def evaluate(self, template: str) -> str:
        """The template with every reference it can resolve substituted; raises SubstitutionError on a cycle."""
        return self._render(parse(template or ""), [])[0]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A variable's value with its references evaluated (None or `default` when unknown)."""
        try:
            return self._lookup(name, [])[0]
        except Unknown:
            return default

    def resolved(self) -> tuple[dict[str, str], list[str]]:
        """Every variable evaluated, and the errors (cycles) met: a variable in a cycle keeps its value as written."""
        out, errors = {}, []
        for lower, name in self.names.items():
            try:
                out[name] = self._lookup(name, [])[0]
            except SubstitutionError as error:
                out[name] = self.values[lower]
                if str(error) not in errors:
                    errors.append(str(error))
        return out, errors

    def is_sensitive(self, value: str) -> bool:
        return value in self.sensitive or value in self.derived_sensitive

    # Rendering ------------------------------------------------------------------------------------

    def _render(self, nodes: list, scopes: list[dict]) -> tuple[str, bool]:
        parts, tainted, size = [], False, 0
        for node in nodes:
            if isinstance(node, Text):
                text, taint = node.text, False
            elif isinstance(node, Substitution):
                text, taint = self._substitution(node, scopes)
            elif isinstance(node, Conditional):
                text, taint = self._conditional(node, scopes)
            else:
                text, taint = self._loop(node, scopes)
            size += len(text)
            if size > MAX_OUTPUT:
                raise SubstitutionError(f"Substitution produced more than {MAX_OUTPUT:,} characters.")
            parts.append(text)
            tainted |= taint
        return "".join(parts), tainted

    def _substitution(self, node: Substitution, scopes: list[dict]) -> tuple[str, bool]:
        try:
            return self._expression(node.expression, scopes)
        except Unknown:
            return node.raw, False

    def _expression(self, expression: str, scopes: list[dict]) -> tuple[str, bool]:
        """`Symbol | Filter args | Filter args`: the filtered value, or Unknown."""
        pieces = _split_pipes(expression)
        symbol = pieces[0].strip()
        if symbol:
            value, tainted = self._symbol(symbol, scopes)
        else:
            value, tainted = None, False
        for piece in pieces[1:]:
            name, arguments = self._filter_call(piece, scopes)
            function = FILTERS.get(name.lower())
            if function is None:
                raise Unknown
            result = function(value, arguments, self)
            if result is None:
                raise Unknown
            if tainted and result != value and result.strip():
                self.derived_sensitive.add(result)
            value = result
        if value is None:
            raise Unknown
        return value, tainted

    def _filter_call(self, piece: str, scopes: list[dict]) -> tuple[str, list[str]]:
        piece = piece.strip()
        name, _, rest = piece.partition(" ")
        return name, self._arguments(rest.strip(), scopes)

    def _arguments(self, text: str, scopes: list[dict]) -> list[str]:
        """Whitespace-separated; "quoted" (also \\"escaped quotes\\"); each `#{…}` is an argument of its own."""
        arguments, i = [], 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
            elif text.startswith('\\"', i):
                end = text.find('\\"', i + 2)
                end = len(text) if end < 0 else end
                arguments.append(text[i + 2 : end])
                i = end + 2
            elif c == '"':
                end = text.find('"', i + 1)
                end = len(text) if end < 0 else end
                arguments.append(text[i + 1 : end])
                i = end + 1
            elif text.startswith("#{", i):
                end = closing_brace(text, i)
                end = len(text) - 1 if end < 0 else end
                arguments.append(self._render(parse(text[i : end + 1]), scopes)[0])
                i = end + 1
            else:
                end = i
                while end < len(text) and not text[end].isspace() and not text.startswith("#{", end):
                    end += 1
                arguments.append(text[i:end])
                i = end
        return arguments

    def _conditional(self, node: Conditional, scopes: list[dict]) -> tuple[str, bool]:
        truth = self._condition(node.expression, scopes)
        if node.negate:
            truth = not truth
        return self._render(node.then if truth else node.otherwise, scopes)

    def _condition(self, expression: str, scopes: list[dict]) -> bool:
        match = re.match(r"^(.*?)\s*(==|!=)\s*(.*)$", expression, re.DOTALL)
        if not match:
            return is_truthy(self._operand(expression, scopes))
        left, right = self._operand(match.group(1), scopes), self._operand(match.group(3), scopes)
        return (left == right) == (match.group(2) == "==")

    def _operand(self, text: str, scopes: list[dict]) -> str:
        text = text.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            return text[1:-1]
        if "#{" in text:
            text = self._render(parse(text), scopes)[0]
        try:
            return self._expression(text, scopes)[0]
        except Unknown:
            return ""

    def _loop(self, node: Loop, scopes: list[dict]) -> tuple[str, bool]:
        items = self._items(node.collection, scopes)
        parts, tainted, size = [], False, 0
        for index, item in enumerate(items):
            self._iterations += 1
            if self._iterations > MAX_ITERATIONS:
                raise SubstitutionError(f"Substitution ran more than {MAX_ITERATIONS:,} loop iterations.")
            scope = {
                node.name.lower(): item,
                "octopus.template.each.first": Item("True" if index == 0 else "False", False),
                "octopus.template.each.last": Item("True" if index == len(items) - 1 else "False", False),
                "octopus.template.each.index": Item(str(index), False),
            }
            text, taint = self._render(node.body, scopes + [scope])
            size += len(text)
            if size > MAX_OUTPUT:
                raise SubstitutionError(f"Substitution produced more than {MAX_OUTPUT:,} characters.")
            parts.append(text)
            tainted |= taint
        return "".join(parts), tainted

    def _items(self, collection: str, scopes: list[dict]) -> list:
        if "#{" in collection:
            collection = self._render(parse(collection), scopes)[0]
        try:
            value, tainted, structured = self._symbol_value(collection, scopes)
        except Unknown:
            value = None
        if value is not None:
            if structured is None:
                structured = parse_json(value) if isinstance(value, str) else value
            if isinstance(structured, list):
                items = [Item(v, tainted) for v in structured]
            elif isinstance(structured, dict):
                items = [Item({"Key": k, "Value": v}, tainted) for k, v in structured.items()]
            else:
                items = [Item(v.strip(), tainted) for v in str(value).split(",") if v.strip()]
            if tainted:
                self.derived_sensitive.update(t for t in (text_of(i.value) for i in items) if t.strip())
            return items
        return [Alias(f"{path}", key) for path, key in self._indexed(collection, scopes)]

    def _indexed(self, collection: str, scopes: list[dict]) -> list[tuple[str, str]]:
        """The keys of an indexed collection: `Octopus.Action[A].Name` → ("Octopus.Action[A]", "A")."""
        prefix = self._expand(collection, scopes)
        lower, keys = prefix.lower() + "[", []
        for name in self.names.values():
            if not name.lower().startswith(lower):
                continue
            depth, i = 0, len(prefix)
            for i in range(len(prefix), len(name)):
                depth += {"[": 1, "]": -1}.get(name[i], 0)
                if depth == 0:
                    break
            if depth == 0:
                key = name[len(prefix) + 1 : i]
                if key not in [k for _, k in keys]:
                    keys.append((f"{prefix}[{key}]", key))
        return keys

    # Symbols --------------------------------------------------------------------------------------

    def _expand(self, symbol: str, scopes: list[dict]) -> str:
        """A loop alias at the head of a symbol becomes the path it stands for."""
        head, rest = split_head(symbol)
        for scope in reversed(scopes):
            binding = scope.get(head.lower())
            if isinstance(binding, Alias):
                return binding.path + rest
            if binding is not None:
                break
        return symbol

    def _symbol(self, symbol: str, scopes: list[dict]) -> tuple[str, bool]:
        value, tainted, structured = self._symbol_value(symbol, scopes)
        if structured is not None and not isinstance(value, str):
            value = text_of(value)
        return value, tainted

    def _symbol_value(self, symbol: str, scopes: list[dict]):
        """(text or JSON value, tainted, the JSON value when the symbol is a loop item) or Unknown."""
        if "#{" in symbol:  # a reference inside an index: `Server[#{Continent}]`
            symbol = self._render(parse(symbol), scopes)[0].strip()
        whole = next((s[symbol.lower()] for s in reversed(scopes) if symbol.lower() in s), None)
        if isinstance(whole, Item) and not isinstance(whole.value, (dict, list)):
            return text_of(whole.value), whole.tainted, None
        head, rest = split_head(symbol)
        for scope in reversed(scopes):
            binding = scope.get(head.lower())
            if binding is None:
                continue
            if isinstance(binding, Alias):
                path = binding.path + rest
                if rest.lower() == ".key" and path.lower() not in self.values:
                    return binding.key, False, None
                if not rest and path.lower() not in self.values:
                    return binding.key, False, None
                return (*self._lookup(path, scopes), None)
            item = binding.value
            if not rest:
                if isinstance(item, dict) and set(item) == {"Key", "Value"}:
                    return text_of(item["Key"]), binding.tainted, None
                return text_of(item), binding.tainted, item
            keys = path_keys(rest) or []
            try:
                found = navigate(item, keys)
            except KeyError:
                raise Unknown from None
            text = text_of(found)
            if binding.tainted and text.strip():
                self.derived_sensitive.add(text)
            return text, binding.tainted, found
        return (*self._lookup(symbol, scopes), None)

    def _lookup(self, name: str, scopes: list[dict]) -> tuple[str, bool]:
        lower = name.lower()
        if lower in self.values:
            return self._value_of(lower)
        for point in reversed(split_points(name)):  # the longest variable name that holds JSON
            prefix = name[:point].lower()
            if prefix not in self.values:
                continue
            text, tainted = self._value_of(prefix)
            document = parse_json(text)
            keys = path_keys(name[point:])
            if document is None or keys is None:
                continue
            try:
                found = navigate(document, keys)
            except KeyError:
                continue
            result = text_of(found)
            if tainted and result.strip():
                self.derived_sensitive.add(result)
            return result, tainted
        raise Unknown

    def _value_of(self, lower: str) -> tuple[str, bool]:
        if lower in self._cache:
            return self._cache[lower]
        if lower in self._resolving:
            loop = self._resolving[self._resolving.index(lower) :] + [lower]
            raise SubstitutionError(
                "The variable {} refers to itself: {}.".format(
                    repr(self.names[lower]), " → ".join(self.names[n] for n in loop)
                )
            )
        if len(self._resolving) >= MAX_DEPTH:
            raise SubstitutionError(
                f"Variables refer to variables more than {MAX_DEPTH} deep, at {self.names[lower]!r}."
            )
        raw = self.values[lower]
        tainted = raw in self.sensitive or self.names[lower] in self.sensitive
        if "#{" not in raw:
            result = (raw, tainted)
        else:
            self._resolving.append(lower)
            try:
                text, inner = self._render(parse(raw), [])
            finally:
                self._resolving.pop()
            result = (text, tainted or inner)
            if result[1] and text != raw and text.strip() and tainted:
                self.derived_sensitive.add(text)
        self._cache[lower] = result
        return result


def _split_pipes(expression: str) -> list[str]:
    """`A | F "x|y" | G` → ["A ", ' F "x|y" ', " G"]: pipes inside quotes or nested #{…} do not split."""
    pieces, current, depth, quoted, i = [], [], 0, False, 0
    while i < len(expression):
        c = expression[i]
        if expression.startswith("#{", i):
            depth += 1
            current.append("#{")
            i += 2
            continue
        if c == "}" and depth:
            depth -= 1
        elif c == '"':
            quoted = not quoted
        elif c == "|" and not quoted and not depth:
            pieces.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    pieces.append("".join(current))
    return pieces


def evaluate(template: str, values: dict[str, str], *, sensitive: set[str] | frozenset[str] = frozenset()) -> str:
    """One-off evaluation (see VariableDictionary)."""
    return VariableDictionary(values, sensitive=sensitive).evaluate(template)
