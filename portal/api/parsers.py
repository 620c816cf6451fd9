"""The API's body parsers (DEFAULT_PARSER_CLASSES): DRF's, plus one walk over what they parsed, so that no endpoint
ever receives a control character (other than tab and line breaks) or a lone surrogate in a string. Either is a
400 naming the field, before any view, serializer or query sees the value."""

from __future__ import annotations

import re

from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from portal.control_characters import MULTILINE_REASON, has_control_characters

_SURROGATE = re.compile(r"[\ud800-\udfff]")
SURROGATE_REASON = "Lone surrogates are not valid text."


def _problems(value, path: str, found: dict[str, list[str]]) -> None:
    if isinstance(value, str):
        if has_control_characters(value, multiline=True):
            found[path or "Body"] = [MULTILINE_REASON]
        elif _SURROGATE.search(value):
            found[path or "Body"] = [SURROGATE_REASON]
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if has_control_characters(name) or _SURROGATE.search(name):
                found[f"{path}.{name!r}" if path else repr(name)] = ["A field name may not hold control characters."]
                continue
            _problems(item, f"{path}.{name}" if path else name, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _problems(item, f"{path}[{index}]", found)


def check_strings(data) -> None:
    found: dict[str, list[str]] = {}
    _problems(data, "", found)
    if found:
        raise ValidationError(found)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_strings(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_strings({key: data.getlist(key) if len(data.getlist(key)) > 1 else data[key] for key in data})
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        check_strings({key: result.data[key] for key in result.data})
        return result
