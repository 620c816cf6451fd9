"""Errors in Octopus's shape: `{"ErrorMessage": ..., "Errors": [...], "Details": {Field: [...]}}`."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from portal.api.base import pascal_case
from portal.request_limits import too_large_message

logger = logging.getLogger(__name__)

BAD_REQUEST = "There was a problem with your request."

# What a bare error answer under /api says, in Octopus's shape, when nothing more specific was written.
STATUS_MESSAGES = {
    400: BAD_REQUEST,
    401: "You must be signed in: give an API key in the X-Octopus-ApiKey header.",
    403: "You do not have permission to perform this action.",
    404: "The resource you requested was not found.",
    406: "The requested response format is not available.",
    413: "The request body is too large.",
    415: "Unsupported media type: send application/json.",
    429: "Too many requests; try again later.",
    500: "The server could not complete the request; the error was logged.",
}


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def json_error(
    status_code: int, message: str, errors: list[str] | None = None, details: dict[str, list[str]] | None = None
) -> JsonResponse:
    """An error answer in Octopus's shape: `{"ErrorMessage", "Errors"[, "Details"]}`."""
    if errors is None:
        errors = [f"{field}: {reason}" for field, reasons in (details or {}).items() for reason in reasons] or [message]
    body = {"ErrorMessage": message, "Errors": errors}
    if details is not None:
        body["Details"] = details
    return JsonResponse(body, status=status_code)


def too_large() -> JsonResponse:
    return json_error(413, too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))


class ApiErrorsMiddleware:
    """Under /api every answer is JSON: an error answered by Django itself (no route: 404, a view that refused the
    method: 405, a CSRF failure, a 500 page) is rewritten in Octopus's shape, keeping its status and headers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not is_api_path(request.path)
            or isinstance(response, StreamingHttpResponse)
            or response.get("Content-Type", "").startswith(("application/json", "application/problem+json"))
        ):
            return response
        if response.status_code == 405:
            message = f"The {request.method} method is not allowed here; use {response.get('Allow', 'another method')}."
        else:
            message = STATUS_MESSAGES.get(response.status_code, f"The request failed ({response.status_code}).")
        replacement = json_error(response.status_code, message)
        for header in ("Allow", "WWW-Authenticate", "Retry-After", "Vary"):
            if response.has_header(header):
                replacement[header] = response[header]
        replacement.cookies = response.cookies
        return replacement


def bad_request(request, exception=None):
    """handler400: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 naming the limit, not a bare 400."""
    if isinstance(exception, RequestDataTooBig):
        if is_api_path(request.path):
            return too_large()
        return render(
            request, "400.html", {"exception": too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}, status=413
        )
    if is_api_path(request.path):
        return json_error(400, BAD_REQUEST)
    return defaults.bad_request(request, exception)


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
    if isinstance(exc, RequestDataTooBig):
        return too_large()
    if isinstance(exc, DataError):
        # The database refused a value (too long, out of range) that validation let through: still the client's
        # input, and nothing was stored (the write's transaction rolled back). Logged, so the gap gets closed.
        logger.warning("A value the database refused reached it: %s", exc)
        return json_error(400, BAD_REQUEST, errors=["A value is too long or out of range for its field."])
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
        errors = [
            f"{field}: {message}" if field else message for field, messages in details.items() for message in messages
        ]
        response.data = {"ErrorMessage": BAD_REQUEST, "Errors": errors, "Details": details}
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"ErrorMessage": str(detail), "Errors": []}
    return response
