"""The filters, each taking (value or None, arguments, dictionary) and returning text, or None to echo the reference
as written."""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import re
import zoneinfo


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
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7E and code <= 0xFFFF:
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
    return value[start : start + length]


def _replace(value, arguments, dictionary):
    if not arguments or len(arguments) > 2:
        return None
    replacement = arguments[1] if len(arguments) == 2 else ""
    # .NET's `$1` / `${name}` / `$$` become Python's; anything else in the replacement is literal.
    python = re.sub(
        r"\$(\d+)|\$\{(\w+)\}|\$\$|\\",
        lambda m: (
            f"\\g<{m.group(1) or m.group(2)}>"
            if (m.group(1) or m.group(2))
            else ("$" if m.group(0) == "$$" else "\\\\")
        ),
        replacement,
    )
    try:
        return re.sub(_dotnet_pattern(arguments[0]), python, value)
    except (re.error, IndexError):
        return None


def _dotnet_pattern(pattern: str) -> str:
    return re.sub(r"\(\?<(\w+)>", r"(?P<\1>", pattern)


# Dates and numbers, in the en-US culture Octopus Server formats with by default.

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_STANDARD_DATE = {
    "d": "M/d/yyyy",
    "D": "dddd, MMMM d, yyyy",
    "t": "h:mm tt",
    "T": "h:mm:ss tt",
    "f": "dddd, MMMM d, yyyy h:mm tt",
    "F": "dddd, MMMM d, yyyy h:mm:ss tt",
    "g": "M/d/yyyy h:mm tt",
    "G": "M/d/yyyy h:mm:ss tt",
    "s": "yyyy-MM-ddTHH:mm:ss",
    "u": "yyyy-MM-dd HH:mm:ssZ",
    "r": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
    "o": "yyyy-MM-ddTHH:mm:ss.fffffffK",
    "O": "yyyy-MM-ddTHH:mm:ss.fffffffK",
    "M": "MMMM d",
    "m": "MMMM d",
    "Y": "MMMM yyyy",
    "y": "MMMM yyyy",
}
_DATE_TOKEN = re.compile(
    r"'[^']*'|\"[^\"]*\"|\\.|d{1,4}|f{1,7}|F{1,7}|g{1,2}|h{1,2}|H{1,2}|K|m{1,2}|M{1,4}|s{1,2}|t{1,2}|y{1,5}|z{1,3}|.",
    re.DOTALL,
)


def _number(value: int, n: int) -> str:
    return str(value) if n == 1 else f"{value:02d}"


def _offset(moment: datetime.datetime, c: str, n: int) -> str:
    offset = moment.utcoffset()
    if offset is None and c == "z":
        offset = datetime.datetime.now().astimezone().utcoffset()
    if offset is None:
        return ""
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    if c == "K" and minutes == 0 and moment.tzinfo is datetime.UTC:
        return "Z"
    if c == "z" and n == 1:
        return f"{sign}{minutes // 60}"
    if c == "z" and n == 2:
        return f"{sign}{minutes // 60:02d}"
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# A custom format's letter → its text for a run of n of that letter.
_DATE_PARTS = {
    "d": lambda m, n: _number(m.day, n) if n <= 2 else _DAYS[m.weekday()][:3] if n == 3 else _DAYS[m.weekday()],
    "M": lambda m, n: _number(m.month, n) if n <= 2 else _MONTHS[m.month - 1][:3] if n == 3 else _MONTHS[m.month - 1],
    "y": lambda m, n: _number(m.year % 100, n) if n <= 2 else str(m.year).zfill(n),
    "H": lambda m, n: _number(m.hour, n),
    "h": lambda m, n: _number(m.hour % 12 or 12, n),
    "m": lambda m, n: _number(m.minute, n),
    "s": lambda m, n: _number(m.second, n),
    "f": lambda m, n: f"{m.microsecond:06d}0"[:n],
    "F": lambda m, n: f"{m.microsecond:06d}0"[:n].rstrip("0"),
    "t": lambda m, n: ("AM" if m.hour < 12 else "PM")[:n],
    "g": lambda m, n: "A.D.",
    "z": lambda m, n: _offset(m, "z", n),
    "K": lambda m, n: _offset(m, "K", n),
}


def format_date(moment: datetime.datetime, pattern: str) -> str:
    """.NET's date format strings (standard and custom)."""
    if pattern in _STANDARD_DATE:
        if pattern in "uUrR":
            moment = moment.astimezone(datetime.UTC) if moment.tzinfo else moment
        pattern = _STANDARD_DATE[pattern]
    out = []
    for token in _DATE_TOKEN.findall(pattern):
        c, n = token[0], len(token)
        if c in "'\"" and n >= 2 and token[-1] == c:
            out.append(token[1:-1])
        elif c == "\\" and n == 2:
            out.append(token[1])
        elif c in _DATE_PARTS:
            out.append(_DATE_PARTS[c](moment, n))
        else:
            out.append(token)
    return "".join(out)


_DATE_INPUTS = [
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%m/%d/%Y %I:%M:%S %p %z",
    "%d %B %Y",
    "%B %d, %Y",
]


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
        moment = dictionary.now or datetime.datetime.now(datetime.UTC)
        moment = moment.astimezone(datetime.UTC) if utc else moment.astimezone()
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
