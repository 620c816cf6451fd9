"""`/api/{spaceId}/environments`: Octopus's environments, written through deployments.services.catalog."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from deployments.api import resources as r
from deployments.api.machines import MachineSerializer
from deployments.models import Environment
from deployments.services import catalog
from deployments.services.interruptions import set_environment_guided_failure
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.permissions import Permission as P


class EnvironmentViewSet(SpaceScopedViewSet):
    serializer_class = r.EnvironmentSerializer
    item_type = "DeploymentEnvironment"
    view_permission, edit_permission, model = P.ENVIRONMENT_VIEW, P.ENVIRONMENT_EDIT, Environment

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(Environment.objects.filter(space=space))

    @extend_schema(request=r.EnvironmentWriteSerializer, responses={201: r.EnvironmentSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(r.EnvironmentWriteSerializer).validated_data
        try:
            with transaction.atomic():
                environment = catalog.create_environment(
                    actor=request.user, space=space, name=d["Name"], description=d["Description"] or ""
                )
                if "SortOrder" in d:
                    environment = catalog.update_environment(
                        actor=request.user,
                        environment=environment,
                        name=environment.name,
                        description=environment.description,
                        sort_order=d["SortOrder"],
                    )
                if d.get("UseGuidedFailure"):
                    environment = set_environment_guided_failure(
                        actor=request.user, environment=environment, enabled=True
                    )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(environment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=r.EnvironmentWriteSerializer, responses={200: r.EnvironmentSerializer})
    def update(self, request, *args, **kwargs):
        self.require_edit()
        environment = self.get_object()
        d = self._input(r.EnvironmentWriteSerializer).validated_data
        try:
            with transaction.atomic():
                environment = catalog.update_environment(
                    actor=request.user,
                    environment=environment,
                    name=d["Name"],
                    description=d["Description"] or "",
                    sort_order=d.get("SortOrder"),
                )
                if "UseGuidedFailure" in d:
                    environment = set_environment_guided_failure(
                        actor=request.user, environment=environment, enabled=d["UseGuidedFailure"]
                    )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(environment).data)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            catalog.delete_environment(actor=request.user, environment=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses={200: r.EnvironmentSerializer(many=True)},
    )
    @action(detail=False, methods=["put"], pagination_class=None)
    def sortorder(self, request, *args, **kwargs):
        """`PUT` the space's environment ids in their new order."""
        space = self.require_edit()
        ids = request.data
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiValidationError({"Ids": ["Send the environment ids as a list, in order."]})
        try:
            catalog.reorder_environments(
                actor=request.user, space=space, ordered_ids=[Environment.pk_from_octopus_id(i) or 0 for i in ids]
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(Environment.objects.filter(space=space), many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def machines(self, request, *args, **kwargs):
        """The deployment targets in the environment."""
        environment = self.get_object()
        self.item_type = "DeploymentTarget"
        page = self.paginate_queryset(environment.deployment_targets.prefetch_related("environments"))
        return self.get_paginated_response(MachineSerializer(page, many=True).data)
