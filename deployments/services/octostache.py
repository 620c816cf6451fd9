"""Octopus's variable substitution (Octostache's syntax and behaviour), pure and standard library only.

    #{Name}                          a variable; an unknown one is left as written
    #{Name | Trim | ToUpper}         filters, applied left to right
    #{Server[#{Continent}]}          references inside an index
    #{Json.Key} #{Json[0].Key}       JSON-path access into a JSON value
    #{if A == "b"}…#{else}…#{/if}    conditionals (also #{unless}, `!=`, truthiness)
    #{each x in List}…#{/each}       loops over comma-separated values, JSON arrays and objects, and
                                     indexed collections (`Octopus.Action[Name].…`), with
                                     Octopus.Template.Each.First / Last / Index
    ##{Name}                         an escaped, literal `#{Name}`

Variable values may themselves hold references; they are evaluated when used, and a cycle raises
`SubstitutionError` naming it. A value derived from a sensitive value (a filter over it, a JSON path
into it, an item of it) is recorded in `derived_sensitive`, so callers can mask it too.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import re
from dataclasses import dataclass, field

__all__ = ["SubstitutionError", "VariableDictionary", "is_truthy", "evaluate"]

FALSE_WORDS = {"", "0", "no", "false"}
MAX_OUTPUT = 10 * 1024 * 1024  # a loop over a loop must not grow without bound…
MAX_ITERATIONS = 100_000  # …nor spin without output
MAX_DEPTH = 100  # variables referring to variables, this deep at most


class SubstitutionError(Exception):
    """A template that cannot be evaluated: a reference cycle, or output past the size limit."""


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in FALSE_WORDS


# Parsing -------------------------------------------------------------------------------------------

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


def _closing(template: str, start: int) -> int:
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
            text.append(template[i:at - 1] + "#{")  # `##{` → a literal `#{`
            i = at + 2
            continue
        end = _closing(template, at)
        if end < 0:
            text.append(template[i:])
            break
        text.append(template[i:at])
        if text:
            yield Text("".join(text))
            text = []
        yield template[at:end + 1]
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
        body = block.body if isinstance(block, Loop) else block.then + ([Text("#{else}")] if block.otherwise else []) + block.otherwise
        parent[index:index + 1] = [Text(block.raw), *body]
    return root


# Symbols and JSON paths ----------------------------------------------------------------------------

def _split_head(symbol: str) -> tuple[str, str]:
    """`a.Name` → (`a`, `.Name`); `a[x].y` → (`a`, `[x].y`)."""
    for i, c in enumerate(symbol):
        if c in ".[":
            return symbol[:i], symbol[i:]
    return symbol, ""


def _split_points(symbol: str) -> list[int]:
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


def _path_keys(path: str) -> list[str] | None:
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
            keys.append(path[i + 1:end])
            i = end + 1
            continue
        end = i
        while end < len(path) and path[end] not in ".[":
            end += 1
        keys.append(path[i:end])
        i = end
    return keys


def _navigate(value, keys: list[str]):
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


def _json(text: str):
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


def _text_of(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, decimal.Decimal):
        return str(value)  # as written: 15.00 stays 15.00
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


def _json_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _text_of(value)


# Bindings of a loop variable ------------------------------------------------------------------------

@dataclass
class _Alias:  # an item of an indexed collection: `x` stands for `Octopus.Action[key]`
    path: str
    key: str


@dataclass
class _Value:  # an item of a list or JSON value
    value: object
    tainted: bool


class _Unknown(Exception):
    """The symbol names no variable: the expression is echoed as written."""


# Evaluation ----------------------------------------------------------------------------------------

class VariableDictionary:
    """Variables (case-insensitive names) and the engine that evaluates templates against them.

    `sensitive`: the sensitive variables' values (or names); anything derived from them by a filter,
    a JSON path or a loop lands in `derived_sensitive`.
    """

    def __init__(self, values: dict[str, str], *, sensitive: set[str] | frozenset[str] = frozenset(),
                 now: datetime.datetime | None = None):
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
        except _Unknown:
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
        except _Unknown:
            return node.raw, False

    def _expression(self, expression: str, scopes: list[dict]) -> tuple[str, bool]:
        """`Symbol | Filter args | Filter args`: the filtered value, or _Unknown."""
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
                raise _Unknown
            result = function(value, arguments, self)
            if result is None:
                raise _Unknown
            if tainted and result != value and result.strip():
                self.derived_sensitive.add(result)
            value = result
        if value is None:
            raise _Unknown
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
                arguments.append(text[i + 2:end])
                i = end + 2
            elif c == '"':
                end = text.find('"', i + 1)
                end = len(text) if end < 0 else end
                arguments.append(text[i + 1:end])
                i = end + 1
            elif text.startswith("#{", i):
                end = _closing(text, i)
                end = len(text) - 1 if end < 0 else end
                arguments.append(self._render(parse(text[i:end + 1]), scopes)[0])
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
        match = re.match(r'^(.*?)\s*(==|!=)\s*(.*)$', expression, re.DOTALL)
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
        except _Unknown:
            return ""

    def _loop(self, node: Loop, scopes: list[dict]) -> tuple[str, bool]:
        items = self._items(node.collection, scopes)
        parts, tainted, size = [], False, 0
        for index, item in enumerate(items):
            self._iterations += 1
            if self._iterations > MAX_ITERATIONS:
                raise SubstitutionError(f"Substitution ran more than {MAX_ITERATIONS:,} loop iterations.")
            scope = {node.name.lower(): item,
                     "octopus.template.each.first": _Value("True" if index == 0 else "False", False),
                     "octopus.template.each.last": _Value("True" if index == len(items) - 1 else "False", False),
                     "octopus.template.each.index": _Value(str(index), False)}
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
        except _Unknown:
            value = None
        if value is not None:
            if structured is None:
                structured = _json(value) if isinstance(value, str) else value
            if isinstance(structured, list):
                items = [_Value(v, tainted) for v in structured]
            elif isinstance(structured, dict):
                items = [_Value({"Key": k, "Value": v}, tainted) for k, v in structured.items()]
            else:
                items = [_Value(v.strip(), tainted) for v in str(value).split(",") if v.strip()]
            if tainted:
                self.derived_sensitive.update(t for t in (_text_of(i.value) for i in items) if t.strip())
            return items
        return [_Alias(f"{path}", key) for path, key in self._indexed(collection, scopes)]

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
                key = name[len(prefix) + 1:i]
                if key not in [k for _, k in keys]:
                    keys.append((f"{prefix}[{key}]", key))
        return keys

    # Symbols --------------------------------------------------------------------------------------

    def _expand(self, symbol: str, scopes: list[dict]) -> str:
        """A loop alias at the head of a symbol becomes the path it stands for."""
        head, rest = _split_head(symbol)
        for scope in reversed(scopes):
            binding = scope.get(head.lower())
            if isinstance(binding, _Alias):
                return binding.path + rest
            if binding is not None:
                break
        return symbol

    def _symbol(self, symbol: str, scopes: list[dict]) -> tuple[str, bool]:
        value, tainted, structured = self._symbol_value(symbol, scopes)
        if structured is not None and not isinstance(value, str):
            value = _text_of(value)
        return value, tainted

    def _symbol_value(self, symbol: str, scopes: list[dict]):
        """(text or JSON value, tainted, the JSON value when the symbol is a loop item) or _Unknown."""
        if "#{" in symbol:  # a reference inside an index: `Server[#{Continent}]`
            symbol = self._render(parse(symbol), scopes)[0].strip()
        whole = next((s[symbol.lower()] for s in reversed(scopes) if symbol.lower() in s), None)
        if isinstance(whole, _Value) and not isinstance(whole.value, (dict, list)):
            return _text_of(whole.value), whole.tainted, None
        head, rest = _split_head(symbol)
        for scope in reversed(scopes):
            binding = scope.get(head.lower())
            if binding is None:
                continue
            if isinstance(binding, _Alias):
                path = binding.path + rest
                if rest.lower() == ".key" and path.lower() not in self.values:
                    return binding.key, False, None
                if not rest and path.lower() not in self.values:
                    return binding.key, False, None
                return (*self._lookup(path, scopes), None)
            item = binding.value
            if not rest:
                if isinstance(item, dict) and set(item) == {"Key", "Value"}:
                    return _text_of(item["Key"]), binding.tainted, None
                return _text_of(item), binding.tainted, item
            keys = _path_keys(rest) or []
            try:
                found = _navigate(item, keys)
            except KeyError:
                raise _Unknown from None
            text = _text_of(found)
            if binding.tainted and text.strip():
                self.derived_sensitive.add(text)
            return text, binding.tainted, found
        return (*self._lookup(symbol, scopes), None)

    def _lookup(self, name: str, scopes: list[dict]) -> tuple[str, bool]:
        lower = name.lower()
        if lower in self.values:
            return self._value_of(lower)
        for point in reversed(_split_points(name)):  # the longest variable name that holds JSON
            prefix = name[:point].lower()
            if prefix not in self.values:
                continue
            text, tainted = self._value_of(prefix)
            document = _json(text)
            keys = _path_keys(name[point:])
            if document is None or keys is None:
                continue
            try:
                found = _navigate(document, keys)
            except KeyError:
                continue
            result = _text_of(found)
            if tainted and result.strip():
                self.derived_sensitive.add(result)
            return result, tainted
        raise _Unknown

    def _value_of(self, lower: str) -> tuple[str, bool]:
        if lower in self._cache:
            return self._cache[lower]
        if lower in self._resolving:
            loop = self._resolving[self._resolving.index(lower):] + [lower]
            raise SubstitutionError("The variable {0} refers to itself: {1}.".format(
                repr(self.names[lower]), " → ".join(self.names[n] for n in loop)))
        if len(self._resolving) >= MAX_DEPTH:
            raise SubstitutionError(f"Variables refer to variables more than {MAX_DEPTH} deep, at {self.names[lower]!r}.")
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


# Filters: each takes (value or None, arguments, dictionary) and returns text, or None to echo -------

def _needs_value(function):
    def wrapper(value, arguments, dictionary):
        return None if value is None else function(value, arguments, dictionary)
    return wrapper


def _escape(pairs: dict[str, str]):
    @_needs_value
    def escape(value, arguments, dictionary):
        return "".join(pairs.get(c, c) for c in value)
    return escape


def _json_escape(value, arguments, dictionary):
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _yaml_single(value, arguments, dictionary):
    # In a single-quoted YAML scalar one line break folds into a space: each run of breaks gets one more.
    value = value.replace("'", "''")
    return re.sub(r"(?:\r\n|\n)+", lambda m: ("\r\n" if m.group(0).startswith("\r\n") else "\n") + m.group(0), value)


def _yaml_double(value, arguments, dictionary):
    out = []
    for c in value:
        code = ord(c)
        if c in _YAML_DOUBLE:
            out.append(_YAML_DOUBLE[c])
        elif code < 0x20 or code == 0x7f:
            out.append(f"\\x{code:02x}")
        elif code > 0x7e and code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        elif code > 0xFFFF:
            out.append(f"\\U{code:08x}")
        else:
            out.append(c)
    return "".join(out)


_YAML_DOUBLE = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}


def _from_base64(value, arguments, dictionary):
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _trim(value, arguments, dictionary):
    if not arguments:
        return value.strip()
    if len(arguments) == 1 and arguments[0].lower() == "start":
        return value.lstrip()
    if len(arguments) == 1 and arguments[0].lower() == "end":
        return value.rstrip()
    return None


def _integer(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d+", text.strip()) else None


def _truncate(value, arguments, dictionary):
    length = _integer(arguments[0]) if len(arguments) == 1 else None
    if length is None or length < 0:
        return None
    return value if len(value) <= length else value[:length] + "..."


def _substring(value, arguments, dictionary):
    if len(arguments) not in (1, 2):
        return None
    numbers = [_integer(a) for a in arguments]
    if any(n is None or n < 0 for n in numbers):
        return None
    start, length = (0, numbers[0]) if len(numbers) == 1 else numbers
    if start + length > len(value):
        return None
    return value[start:start + length]


def _replace(value, arguments, dictionary):
    if not arguments or len(arguments) > 2:
        return None
    replacement = arguments[1] if len(arguments) == 2 else ""
    # .NET's `$1` / `${name}` / `$$` become Python's; anything else in the replacement is literal.
    python = re.sub(r"\$(\d+)|\$\{(\w+)\}|\$\$|\\",
                    lambda m: f"\\g<{m.group(1) or m.group(2)}>" if (m.group(1) or m.group(2)) else ("$" if m.group(0) == "$$" else "\\\\"),
                    replacement)
    try:
        return re.sub(_dotnet_pattern(arguments[0]), python, value)
    except (re.error, IndexError):
        return None


def _dotnet_pattern(pattern: str) -> str:
    return re.sub(r"\(\?<(\w+)>", r"(?P<\1>", pattern)


# Dates and numbers, in the en-US culture Octopus Server formats with by default.

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_STANDARD_DATE = {"d": "M/d/yyyy", "D": "dddd, MMMM d, yyyy", "t": "h:mm tt", "T": "h:mm:ss tt",
                  "f": "dddd, MMMM d, yyyy h:mm tt", "F": "dddd, MMMM d, yyyy h:mm:ss tt", "g": "M/d/yyyy h:mm tt",
                  "G": "M/d/yyyy h:mm:ss tt", "s": "yyyy-MM-ddTHH:mm:ss", "u": "yyyy-MM-dd HH:mm:ssZ",
                  "r": "ddd, dd MMM yyyy HH:mm:ss 'GMT'", "R": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
                  "o": "yyyy-MM-ddTHH:mm:ss.fffffffK", "O": "yyyy-MM-ddTHH:mm:ss.fffffffK",
                  "M": "MMMM d", "m": "MMMM d", "Y": "MMMM yyyy", "y": "MMMM yyyy"}
_DATE_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\\.|d{1,4}|f{1,7}|F{1,7}|g{1,2}|h{1,2}|H{1,2}|K|m{1,2}|M{1,4}|s{1,2}|t{1,2}|y{1,5}|z{1,3}|.",
                         re.DOTALL)


def format_date(moment: datetime.datetime, pattern: str) -> str:
    """.NET's date format strings (standard and custom)."""
    if pattern in _STANDARD_DATE:
        if pattern in "uUrR":
            moment = moment.astimezone(datetime.timezone.utc) if moment.tzinfo else moment
        pattern = _STANDARD_DATE[pattern]
    out = []
    for token in _DATE_TOKEN.findall(pattern):
        c, n = token[0], len(token)
        if c in "'\"" and n >= 2 and token[-1] == c:
            out.append(token[1:-1])
        elif c == "\\" and n == 2:
            out.append(token[1])
        elif c == "d":
            out.append(str(moment.day) if n == 1 else f"{moment.day:02d}" if n == 2 else
                       _DAYS[moment.weekday()][:3] if n == 3 else _DAYS[moment.weekday()])
        elif c == "M":
            out.append(str(moment.month) if n == 1 else f"{moment.month:02d}" if n == 2 else
                       _MONTHS[moment.month - 1][:3] if n == 3 else _MONTHS[moment.month - 1])
        elif c == "y":
            out.append(str(moment.year % 100) if n == 1 else f"{moment.year % 100:02d}" if n == 2 else str(moment.year).zfill(n))
        elif c == "H":
            out.append(str(moment.hour) if n == 1 else f"{moment.hour:02d}")
        elif c == "h":
            hour = moment.hour % 12 or 12
            out.append(str(hour) if n == 1 else f"{hour:02d}")
        elif c == "m":
            out.append(str(moment.minute) if n == 1 else f"{moment.minute:02d}")
        elif c == "s":
            out.append(str(moment.second) if n == 1 else f"{moment.second:02d}")
        elif c in "fF":
            digits = f"{moment.microsecond:06d}0"[:n]
            out.append(digits if c == "f" else digits.rstrip("0"))
        elif c == "t":
            out.append(("AM" if moment.hour < 12 else "PM")[:n])
        elif c == "g":
            out.append("A.D.")
        elif c in "zK":
            offset = moment.utcoffset()
            if offset is None:
                offset = datetime.datetime.now().astimezone().utcoffset() if c == "z" else None
                if offset is None:
                    continue
            minutes = int(offset.total_seconds() // 60)
            sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
            if c == "K" and minutes == 0 and moment.tzinfo is datetime.timezone.utc:
                out.append("Z")
            elif c == "z" and n == 1:
                out.append(f"{sign}{minutes // 60}")
            elif c == "z" and n == 2:
                out.append(f"{sign}{minutes // 60:02d}")
            else:
                out.append(f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
        else:
            out.append(token)
    return "".join(out)


_DATE_INPUTS = ["%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y",
                "%m/%d/%Y %I:%M:%S %p %z", "%d %B %Y", "%B %d, %Y"]


def parse_date(text: str) -> datetime.datetime | None:
    text = text.strip()
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for pattern in _DATE_INPUTS:
        try:
            return datetime.datetime.strptime(text.replace("+00:00", "+0000"), pattern)
        except ValueError:
            continue
    return None


def format_number(number: decimal.Decimal, pattern: str) -> str | None:
    """.NET's standard numeric formats (C, N, F, P, D, E, G, X) and simple custom ones (0.00, #,##0)."""
    match = re.fullmatch(r"([CcNnFfPpDdEeGgXx])(\d{0,2})", pattern)
    if match:
        kind, digits = match.group(1).upper(), match.group(2)
        places = int(digits) if digits else None
        if kind == "C":
            text = f"{abs(number):,.{2 if places is None else places}f}"
            return f"-${text}" if number < 0 else f"${text}"
        if kind == "N":
            return f"{number:,.{2 if places is None else places}f}"
        if kind == "F":
            return f"{number:.{2 if places is None else places}f}"
        if kind == "P":
            return f"{number * 100:,.{2 if places is None else places}f}%"
        if kind in "DX":
            if number != number.to_integral_value():
                return None
            value = int(number)
            text = str(abs(value)) if kind == "D" else format(abs(value), "X" if match.group(1) == "X" else "x")
            return ("-" if value < 0 else "") + text.zfill(places or 0)
        if kind == "E":
            text = f"{number:.{6 if places is None else places}E}"
            mantissa, exponent = text.split("E")
            return f"{mantissa}{match.group(1)}{exponent[0]}{int(exponent[1:]):03d}"
        return str(number.normalize()) if places is None else f"{number:.{places}g}"
    if re.fullmatch(r"[#0,]*\.?[#0]*", pattern) and pattern:
        integer, _, fraction = pattern.partition(".")
        minimum, maximum = fraction.count("0"), len(fraction)
        text = f"{number:{',' if ',' in integer else ''}.{maximum}f}"
        if maximum > minimum and "." in text:
            whole, part = text.split(".")
            part = part[:minimum] + part[minimum:].rstrip("0")
            text = whole + ("." + part if part else "")
        whole_digits = integer.replace(",", "").count("0")
        sign = "-" if text.startswith("-") else ""
        body = text.lstrip("-")
        whole, dot, part = body.partition(".")
        if whole.replace(",", "") == "0" and whole_digits == 0:
            whole = ""
        return sign + whole + dot + part
    return None


def _format(value, arguments, dictionary):
    if not arguments or len(arguments) > 2:
        return None
    kind, pattern = (arguments[0], arguments[1]) if len(arguments) == 2 else ("", arguments[0])
    kind = kind.lower()
    if kind in ("", "decimal", "double", "int", "int32", "int64", "float", "single"):
        try:
            number = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            number = None
        if number is not None and number.is_finite() and abs(number.adjusted()) <= 100:  # 1e999999999 is no amount
            return format_number(number, pattern)
        if kind:
            return None
    if kind in ("", "date", "datetime", "datetimeoffset"):
        moment = parse_date(value)
        if moment is not None:
            if kind == "datetimeoffset" and moment.tzinfo is None:
                moment = moment.astimezone()
            return format_date(moment, pattern)
    return None


def _now(utc: bool):
    def now(value, arguments, dictionary):
        if len(arguments) > 2:
            return None
        moment = dictionary.now or datetime.datetime.now(datetime.timezone.utc)
        moment = moment.astimezone(datetime.timezone.utc) if utc else moment.astimezone()
        pattern = None
        for argument in arguments:
            zone = _zone(argument)
            if zone is not None:
                moment = moment.astimezone(zone)
            else:
                pattern = argument
        if pattern is None:  # DateTime.Now / DateTimeOffset.UtcNow as en-US prints them
            return format_date(moment, "M/d/yyyy h:mm:ss tt zzz" if utc else "M/d/yyyy h:mm:ss tt")
        return format_date(moment, pattern)
    return now


def _zone(name: str):
    try:
        import zoneinfo

        return zoneinfo.ZoneInfo(name) if "/" in name or name.upper() == "UTC" else None
    except (ImportError, ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
        return None


FILTERS = {
    "tolower": _needs_value(lambda v, a, d: v.lower() if not a else None),
    "toupper": _needs_value(lambda v, a, d: v.upper() if not a else None),
    "tobase64": _needs_value(lambda v, a, d: base64.b64encode(v.encode("utf-8")).decode()),
    "frombase64": _needs_value(_from_base64),
    "htmlescape": _escape({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}),
    "xmlescape": _escape({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}),
    "jsonescape": _needs_value(_json_escape),
    "yamlsinglequoteescape": _needs_value(_yaml_single),
    "yamldoublequoteescape": _needs_value(_yaml_double),
    "trim": _needs_value(_trim),
    "truncate": _needs_value(_truncate),
    "substring": _needs_value(_substring),
    "replace": _needs_value(_replace),
    "format": _needs_value(_format),
    "nowdate": _now(False),
    "nowdateutc": _now(True),
}
