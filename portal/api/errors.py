"""Errors in Octopus's shape: `{"ErrorMessage": ..., "Errors": [...], "Details": {Field: [...]}}`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from portal.api.base import pascal_case


def _flatten(detail, prefix: str = "", query_params=()) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a list item's errors
                out.update(_flatten(value, f"{prefix}[{key}]", query_params))
                continue
            # Body fields are PascalCase, as Octopus names them; query parameters keep their own names.
            name = "" if key == "non_field_errors" else str(key) if key in query_params else pascal_case(str(key))
            out.update(_flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name, query_params))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix: [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            out.update(_flatten(item, f"{prefix}[{index}]", query_params))
        return out
    return {prefix: [str(detail)]}


def octopus_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "The resource you requested was not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission to perform this action.")

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        request = context.get("request")
        details = _flatten(exc.detail, query_params=request.query_params if request is not None else ())
        errors = [f"{field}: {message}" if field else message for field, messages in details.items() for message in messages]
        response.data = {"ErrorMessage": "There was a problem with your request.", "Errors": errors, "Details": details}
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"ErrorMessage": str(detail), "Errors": []}
    return response
