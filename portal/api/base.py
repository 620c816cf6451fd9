"""Octopus's resource shape, in one place: PascalCase fields, string ids, `Links`."""

from __future__ import annotations

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def _json_type(value) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def type_errors(fields, data) -> dict[str, list[str]]:
    """JSON types checked before DRF's coercions, which would take "yes" for true and 123 for the name "123"."""
    if not isinstance(data, dict) or isinstance(data, QueryDict):  # form posts carry only strings
        return {}
    errors = {}
    for name, field in fields.items():
        if field.read_only or name not in data or data[name] is None:
            continue
        value = data[name]
        if isinstance(field, serializers.BooleanField):
            wanted, ok = "true or false", isinstance(value, bool)
        elif isinstance(field, (serializers.IntegerField, serializers.FloatField, serializers.DecimalField)):
            wanted, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(
            field, (serializers.CharField, serializers.ChoiceField, serializers.DateTimeField, OctopusIdField)
        ):
            wanted, ok = "a string", isinstance(value, str)
        elif isinstance(field, (serializers.ListField, serializers.ListSerializer)):
            wanted, ok = "a list", isinstance(value, list)
        elif isinstance(field, (serializers.DictField, serializers.Serializer)):
            wanted, ok = "an object", isinstance(value, dict)
        else:
            continue
        if not ok:
            errors[name] = [f"Expected {wanted}, not {_json_type(value)}."]
    return errors


class StrictTypesMixin:
    """A string where a boolean or number belongs (or the reverse) is a 400 naming the field, and changes nothing."""

    def to_internal_value(self, data):
        if errors := type_errors(self.fields, data):
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictTypesMixin, serializers.Serializer):
    """The base of every API input serializer."""


class OctopusSerializer(StrictTypesMixin, serializers.ModelSerializer):
    """Subclasses declare PascalCase fields with `source=` and a `self_link` template such as
    "/api/spaces/{id}". `Id` and `Links` come from here."""

    self_link = ""

    Id = serializers.SerializerMethodField()
    Links = serializers.SerializerMethodField()

    def get_Id(self, obj) -> str:  # noqa: N802 - Octopus field names
        return obj.octopus_id

    def get_Links(self, obj) -> dict[str, str]:  # noqa: N802
        links = {"Self": self.self_link.format(id=obj.octopus_id, **self.link_context(obj))}
        links.update(self.extra_links(obj))
        return links

    def link_context(self, obj) -> dict[str, str]:
        return {}

    def extra_links(self, obj) -> dict[str, str]:
        return {}


class SpaceScopedSerializer(OctopusSerializer):
    """Resources that live in a space carry `SpaceId`, and `{space}` in their links."""

    SpaceId = serializers.SerializerMethodField()

    def get_SpaceId(self, obj) -> str:  # noqa: N802
        return f"Spaces-{obj.space_id}"

    def link_context(self, obj):
        return {"space": f"Spaces-{obj.space_id}"}


def pascal_case(name: str) -> str:
    """`worker_pool_ids` → `WorkerPoolIds`; leaves names that are already PascalCase alone."""
    if "_" not in name and name[:1].isupper():
        return name
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


@extend_schema_field(OpenApiTypes.STR)
class OctopusIdField(serializers.Field):
    """Accepts an Octopus id ("Spaces-1") for `model`, validating that the row exists in `queryset`."""

    default_error_messages = {
        "invalid": "{value!r} is not a {prefix} id.",
        "missing": "{value} does not exist.",
    }

    def __init__(self, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(**kwargs)

    def get_queryset(self):
        queryset = self.queryset
        return queryset() if callable(queryset) else queryset

    def to_internal_value(self, data):
        model = self.get_queryset().model
        pk = model.pk_from_octopus_id(data)
        if pk is None:
            self.fail("invalid", value=data, prefix=model.ID_PREFIX)
        obj = self.get_queryset().filter(pk=pk).first()
        if obj is None:
            self.fail("missing", value=data)
        return obj

    def to_representation(self, value):
        return value.octopus_id if value is not None else None
