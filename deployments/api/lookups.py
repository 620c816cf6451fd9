"""Shared by the deployments API's views: finding what a request names (by id in the space, or by name as
Octopus's executions API does), and the 409 of a stale `Version`."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.services import processes


def find(model, space, octopus_id: str, field: str, *, related: tuple[str, ...] = (), **scope):
    """The space's object with that id (its `related` rows read with it), or a 400 naming the field."""
    found = None
    if octopus_id:
        matches = model.objects.filter(pk=model.pk_from_octopus_id(octopus_id) or 0, **scope)
        if related:  # (select_related() of nothing would follow every foreign key)
            matches = matches.select_related(*related)
        found = next(iter(matches.order_by()[:1]), None)  # one row by its key: no ORDER BY to build
    if found is None or found.space_id != space.pk:
        raise ApiValidationError({field: [f"No {model.__name__.lower()} {octopus_id!r} in this space."]})
    return found


def conflict(error: processes.VersionConflict) -> Response:
    return Response(
        {
            "ErrorMessage": str(error),
            "Errors": [str(error)],
            "Details": {"Version": [f"sent {error.sent}, current {error.current}"]},
        },
        status=status.HTTP_409_CONFLICT,
    )


def by_name(queryset, name: str, field: str, what: str):
    """Octopus's executions API names things: by name, else slug, else id."""
    found = queryset.filter(name__iexact=name).first()
    if found is None and hasattr(queryset.model, "slug"):
        found = queryset.filter(slug=name).first()
    if found is None:
        found = queryset.filter(pk=queryset.model.pk_from_octopus_id(name) or 0).first()
    if found is None:
        raise ApiValidationError({field: [f"No {what} named {name!r}."]})
    return found
