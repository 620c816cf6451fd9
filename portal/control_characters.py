"""Control characters are bad input, refused with a 400 naming the field before they reach a query.

PostgreSQL refuses NUL in text (a 500 if it gets that far), and the other C0 controls forge log lines and
break headers. Single-line values (query parameters, names) may hold none; multi-line ones (scripts,
descriptions) may hold tab, newline and carriage return. Three places apply this, so every page and endpoint
gets it without asking: this middleware (the address and every query parameter, pages and API alike), the
API's parsers (portal/api/parsers.py: every string in a JSON or form body) and the portal's forms
(portal.forms.BootstrapFormMixin: every text field).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.shortcuts import render

_ANY = re.compile(r"[\x00-\x1f\x7f]")
_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

REASON = "Control characters (such as NUL) are not allowed here."
MULTILINE_REASON = "Control characters other than tab and line breaks (such as NUL) are not allowed here."


def has_control_characters(text: str, *, multiline: bool = False) -> bool:
    return bool((_BUT_LINES if multiline else _ANY).search(text))


def single_line_validator(value) -> None:
    if isinstance(value, str) and has_control_characters(value):
        raise ValidationError(REASON, code="control_characters")


def multiline_validator(value) -> None:
    if isinstance(value, str) and has_control_characters(value, multiline=True):
        raise ValidationError(MULTILINE_REASON, code="control_characters")


def bad_query_parameters(request) -> dict[str, list[str]]:
    """Each query parameter (or the address itself) holding a control character, with the reason."""
    problems: dict[str, list[str]] = {}
    if has_control_characters(request.path):
        problems["path"] = ["The address holds a control character."]
    for name, values in request.GET.lists():
        if has_control_characters(name) or any(has_control_characters(value) for value in values):
            problems[name if not has_control_characters(name) else repr(name)] = [REASON]
    return problems


class ControlCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problems = bad_query_parameters(request)
        if not problems:
            return self.get_response(request)
        from portal.api.errors import is_api_path, json_error  # the API's modules import this one

        if is_api_path(request.path):
            return json_error(400, "There was a problem with your request.", details=problems)
        text = "; ".join(f"{name}: {' '.join(reasons)}" for name, reasons in problems.items())
        return render(request, "400.html", {"exception": text}, status=400)
