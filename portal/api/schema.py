"""The OpenAPI schema tells the truth about every operation (DEFAULT_SCHEMA_CLASS), without each view saying so:

- `/all` answers an array of the resource, unpaged; lists take `skip`/`take` (the paginator) and `ids`/`partialName`;
- every operation declares the errors it really answers, in Octopus's error shape: 400 (a bad parameter or body:
  any query parameter with a control character is one), 401 and 403 unless it is public, 404 where the path names
  something or a space (an unseen space is a 404), 413 and 415 where it takes a body; a view adds others (409 on
  an optimistic-concurrency PUT) with `error_codes = (409,)`;
- the default space's unscoped aliases are documented beside the scoped routes, with their own operation ids.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_DESCRIPTIONS = {
    400: "A parameter or a field is not valid; `Details` names each one and why.",
    401: "No API key, or one that is not valid, has expired or was revoked.",
    403: "The API key's user lacks the permission this needs.",
    404: "Nothing with that id (or in that space) that this user may see.",
    409: "The resource changed since it was read: the answer names both versions.",
    413: "The request body is larger than the limit the answer names.",
    415: "The request body is not in a media type this operation takes.",
}


class ErrorSerializer(serializers.Serializer):
    """Octopus's error answer."""

    ErrorMessage = serializers.CharField()
    Errors = serializers.ListField(child=serializers.CharField())
    Details = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)

    class Meta:
        ref_name = "Error"


class OctopusAutoSchema(AutoSchema):
    def _is_list_view(self, serializer=None) -> bool:
        if getattr(self.view, "action", None) == "all":
            return True
        return super()._is_list_view(serializer)

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if (
            self.method == "GET"
            and getattr(self.view, "action", None) in ("list", "all")
            and hasattr(self.view, "filter_ids_and_name")
        ):
            parameters += [
                OpenApiParameter("ids", str, description="Comma-separated ids, such as `WorkerPools-1,WorkerPools-2`."),
                OpenApiParameter("partialName", str, description="Only those whose name contains this (any case)."),
            ]
        return parameters

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        # The scoped route and its unscoped alias would otherwise share one id.
        return f"space_{operation_id}" if "{space_id}" in self.path else operation_id

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        # An id a view fixes with @extend_schema(operation_id=…) skips get_operation_id: scope it here too.
        if operation and "{space_id}" in self.path and not operation.get("operationId", "").startswith("space_"):
            operation["operationId"] = f"space_{operation['operationId']}"
        return operation

    def error_codes(self) -> set[int]:
        codes = {400}
        if not any(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes |= {401, 403}
        if "{" in self.path or hasattr(self.view, "get_space"):
            codes.add(404)
        if self.method in ("POST", "PUT", "PATCH"):
            codes |= {413, 415}
        return codes | set(getattr(self.view, "error_codes", ()))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in sorted(self.error_codes()):
            if str(code) not in responses:
                response = self._get_response_for_code(ErrorSerializer, str(code), ["application/json"], direction)
                response["description"] = ERROR_DESCRIPTIONS.get(code, "")
                responses[str(code)] = response
        return responses


def link_created_resources(result, generator, request, public):
    """A postprocessing hook: each create (`POST /x` answering 201 with an `Id`) links to what `/x/{id}` does with
    it, as OpenAPI links, so the stateful phase of a schema-driven test creates a resource, then reads, changes and
    deletes that very one."""
    paths = result.get("paths", {})
    for path, item in paths.items():
        created = (item.get("post") or {}).get("responses", {}).get("201")
        target = paths.get(f"{path}/{{id}}")
        if not created or not target:
            continue
        links = {}
        for method, operation in target.items():
            if method not in ("get", "put", "patch", "delete"):
                continue
            parameters = {"id": "$response.body#/Id"}
            if "{space_id}" in path:
                parameters["space_id"] = "$request.path.space_id"
            if "{user_id}" in path:
                parameters["user_id"] = "$request.path.user_id"
            links[f"{method.capitalize()}Created"] = {"operationId": operation["operationId"], "parameters": parameters}
        if links:
            created["links"] = links
    return result
