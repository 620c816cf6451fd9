"""Octopus's paged collections: `?skip=&take=` in, `Items`, `TotalResults`, … out."""

from __future__ import annotations

import math

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

MAX_SKIP = 2**31 - 1  # past any real collection, and within what the database takes as an OFFSET


def _non_negative(request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"{raw!r} is not a whole number."]}) from None
    if not 0 <= value <= MAX_SKIP:
        raise ValidationError({name: [f"Must be between 0 and {MAX_SKIP}."]})
    return value


class OctopusPagination(BasePagination):
    default_take = 30
    max_take = 2000

    def paginate_queryset(self, queryset, request, view=None):
        self.skip = _non_negative(request, "skip", 0)
        self.take = min(_non_negative(request, "take", self.default_take), self.max_take)
        self.total = queryset.count()
        self.request = request
        self.item_type = getattr(view, "item_type", "")
        if self.take == 0:
            return []
        return list(queryset[self.skip : self.skip + self.take])

    def get_paginated_response(self, data):
        pages = max(1, math.ceil(self.total / self.take)) if self.take else 1
        path = self.request.path
        return Response(
            {
                "ItemType": self.item_type,
                "TotalResults": self.total,
                "ItemsPerPage": self.take,
                "NumberOfPages": pages,
                "LastPageNumber": pages - 1,
                "Items": data,
                "Links": {
                    "Self": f"{path}?skip={self.skip}&take={self.take}",
                    "Template": f"{path}{{?skip,take}}",
                    "Page.All": f"{path}/all",
                    "Page.Current": f"{path}?skip={self.skip}&take={self.take}",
                    "Page.Last": f"{path}?skip={(pages - 1) * self.take}&take={self.take}",
                },
            }
        )

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "skip",
                "required": False,
                "in": "query",
                "description": "How many to skip (zero or more).",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP},
            },
            {
                "name": "take",
                "required": False,
                "in": "query",
                "description": f"How many to return (zero or more; "
                f"at most {self.max_take}, default {self.default_take}).",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP},
            },
        ]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "properties": {
                "ItemType": {"type": "string"},
                "TotalResults": {"type": "integer"},
                "ItemsPerPage": {"type": "integer"},
                "NumberOfPages": {"type": "integer"},
                "LastPageNumber": {"type": "integer"},
                "Items": schema,
                "Links": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
