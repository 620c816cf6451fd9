"""The infrastructure REST API: `/api/{spaceId}/workerpools|workers|machinepolicies|accounts`, and the
unscoped `/api/workerpools` etc. for the default space, as Octopus serves them."""

from __future__ import annotations

from abc import ABC, abstractmethod

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from infrastructure.api import serializers as s
from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services import accounts, certificates, policies, pools, workers
from infrastructure.services.workers import Endpoint, WorkerSpec
from portal.api.views import OctopusViewSetMixin
from portal.models import Space
from portal.permissions import Permission as P
from portal.services.access import get_space_for_user, require_permission, spaces_visible_to

_ENDPOINT_FIELDS = {"communication_style", "uri", "thumbprint", "host", "port", "fingerprint", "account_id"}


def _reraise_for_api(error: ValidationError, endpoint_fields: frozenset | set = frozenset()):
    """Service errors carry snake_case field names; the API answers in Octopus's (nested) names."""
    if not hasattr(error, "error_dict"):
        raise error
    detail = {}
    for field, messages in error.message_dict.items():
        name = "".join(part.title() if part != "id" else "Id" for part in field.split("_"))
        detail[f"Endpoint.{name}" if field in endpoint_fields else name] = messages
    raise ApiValidationError(detail)


class SpaceScopedViewSet(OctopusViewSetMixin, viewsets.GenericViewSet, ABC):
    """Resolves `{spaceId}` (or the default space), 404 when invisible, and checks view/edit permissions."""

    view_permission: P
    edit_permission: P
    model = None
    lookup_value_regex = r"[^/]+"

    def get_space(self) -> Space:
        if not hasattr(self, "_space"):
            space_id = self.kwargs.get("space_id")
            if space_id is None:  # the default space, if the user may see it: one read
                default = spaces_visible_to(self.request.user).filter(is_default=True).order_by()[:1]
                self._space = next(iter(default), None)  # at most one default space: no ORDER BY to build
                if self._space is None:
                    raise Http404("No such space.")
            else:
                self._space = get_space_for_user(self.request.user, space_id)
            require_permission(self.request.user, self.view_permission, space=self._space)
        return self._space

    def require_edit(self) -> Space:
        space = self.get_space()
        require_permission(self.request.user, self.edit_permission, space=space)
        return space

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request space
            return self.model.objects.none()
        return self.scoped_queryset(self.get_space())

    @abstractmethod
    def scoped_queryset(self, space: Space):
        """The space's objects this viewset lists and finds."""

    def get_object(self):
        pk = self.model.pk_from_octopus_id(self.kwargs["pk"])
        return get_object_or_404(self.get_queryset(), pk=pk)

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(self.get_object()).data)

    def _input(self, serializer_class):
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return data


class WorkerPoolViewSet(SpaceScopedViewSet):
    serializer_class = s.WorkerPoolSerializer
    item_type = "WorkerPool"
    view_permission, edit_permission, model = P.WORKER_VIEW, P.WORKER_EDIT, WorkerPool

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(WorkerPool.objects.filter(space=space).order_by("sort_order", "name"))

    @extend_schema(request=s.WorkerPoolWriteSerializer, responses={201: s.WorkerPoolSerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        d = self._input(s.WorkerPoolWriteSerializer).validated_data
        try:
            pool = pools.create_worker_pool(
                actor=request.user,
                space=space,
                name=d["Name"],
                description=d["Description"],
                pool_type=d["WorkerPoolType"],
                worker_type=d["WorkerType"],
                is_default=d["IsDefault"],
            )
            if "SortOrder" in d:
                pool = pools.update_worker_pool(actor=request.user, pool=pool, sort_order=d["SortOrder"])
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(pool).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.WorkerPoolWriteSerializer)
    def update(self, request, *args, **kwargs):
        self.require_edit()
        pool = self.get_object()
        d = self._input(s.WorkerPoolWriteSerializer).validated_data
        if pool.is_default and not d["IsDefault"]:
            raise ApiValidationError({"IsDefault": ["Make another pool the default instead; a space always has one."]})
        try:
            pool = pools.update_worker_pool(
                actor=request.user,
                pool=pool,
                name=d["Name"],
                description=d["Description"],
                sort_order=d.get("SortOrder"),
                worker_type=d["WorkerType"] or None,
            )
            if d["IsDefault"] and not pool.is_default:
                pool = pools.make_default_worker_pool(actor=request.user, pool=pool)
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(pool).data)

    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            pools.delete_worker_pool(actor=request.user, pool=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses={200: s.WorkerPoolSerializer(many=True)},
    )
    @action(detail=False, methods=["put"], pagination_class=None)
    def sortorder(self, request, *args, **kwargs):
        """`PUT` every pool id of the space in its new order, as Octopus's client sorts pools."""
        space = self.require_edit()
        ids = request.data
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiValidationError({"Ids": ["Send the worker pool ids as a list, in order."]})
        try:
            pools.reorder_worker_pools(
                actor=request.user, space=space, ordered_ids=[WorkerPool.pk_from_octopus_id(i) or 0 for i in ids]
            )
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(
            self.get_serializer(WorkerPool.objects.filter(space=space).order_by("sort_order", "name"), many=True).data
        )

    @extend_schema(responses=s.WorkerSerializer(many=True))
    @action(detail=True, methods=["get"])
    def workers(self, request, *args, **kwargs):
        pool = self.get_object()
        queryset = workers.workers_in_space(pool.space).filter(worker_pools=pool)
        page = self.paginate_queryset(queryset)
        self.item_type = "Worker"
        return self.get_paginated_response(s.WorkerSerializer(page, many=True).data)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request, *args, **kwargs):
        space = self.get_space()
        statuses = Worker.HealthStatus.values
        rows = pools.pools_with_health_counts(space)
        styles = {style: 0 for style in Worker.CommunicationStyle.values}
        for style in Worker.objects.filter(space=space).values_list("communication_style", flat=True):
            styles[style] += 1
        summaries = [
            {
                "WorkerPool": s.WorkerPoolSerializer(pool).data,
                "TotalMachines": pool.worker_count,
                "TotalDisabledMachines": pool.disabled_count,
                "MachineHealthStatusSummaries": {status_: getattr(pool, f"count_{status_}") for status_ in statuses},
            }
            for pool in rows
        ]
        totals = {
            status_: Worker.objects.filter(space=space, health_status=status_, is_disabled=False).count()
            for status_ in statuses
        }
        return Response(
            {
                "WorkerPoolSummaries": summaries,
                "TotalMachines": Worker.objects.filter(space=space).count(),
                "TotalDisabledMachines": Worker.objects.filter(space=space, is_disabled=True).count(),
                "MachineHealthStatusSummaries": totals,
                "MachineEndpointSummaries": styles,
                "TentacleUpgradesRequired": False,
            }
        )


class WorkerViewSet(SpaceScopedViewSet):
    serializer_class = s.WorkerSerializer
    item_type = "Worker"
    view_permission, edit_permission, model = P.WORKER_VIEW, P.WORKER_EDIT, Worker

    def scoped_queryset(self, space):
        queryset = workers.workers_in_space(space).select_related("account")
        params = self.request.query_params
        if params.get("name"):
            queryset = queryset.filter(name__icontains=params["name"])
        if params.get("thumbprint"):
            queryset = queryset.filter(thumbprint=params["thumbprint"].upper())
        if params.get("healthStatuses"):
            wanted = params["healthStatuses"].split(",")
            bad = [w for w in wanted if w not in Worker.HealthStatus.values]
            if bad:
                raise ApiValidationError({"healthStatuses": [f"Unknown health status: {', '.join(bad)}."]})
            queryset = queryset.filter(health_status__in=wanted)
        if params.get("communicationStyles"):
            wanted = params["communicationStyles"].split(",")
            bad = [w for w in wanted if w not in Worker.CommunicationStyle.values]
            if bad:
                raise ApiValidationError({"communicationStyles": [f"Unknown communication style: {', '.join(bad)}."]})
            queryset = queryset.filter(communication_style__in=wanted)
        if params.get("isDisabled") not in (None, ""):
            flag = params["isDisabled"].lower()
            if flag not in ("true", "false"):
                raise ApiValidationError({"isDisabled": ["Use true or false."]})
            queryset = queryset.filter(is_disabled=flag == "true")
        if params.get("workerPoolIds"):
            pks = [WorkerPool.pk_from_octopus_id(i.strip()) for i in params["workerPoolIds"].split(",")]
            queryset = queryset.filter(worker_pools__in=[pk for pk in pks if pk]).distinct()
        return self.filter_ids_and_name(queryset.order_by("name"))

    def _spec(self, space: Space, d: dict) -> WorkerSpec:
        pool_pks = {WorkerPool.pk_from_octopus_id(i): i for i in d["WorkerPoolIds"]}
        found = {p.pk: p for p in WorkerPool.objects.filter(space=space, pk__in=[pk for pk in pool_pks if pk])}
        missing = [i for pk, i in pool_pks.items() if pk not in found]
        if missing:
            raise ApiValidationError({"WorkerPoolIds": [f"No worker pool {', '.join(missing)} in {space.name}."]})
        policy = None
        if d["MachinePolicyId"]:
            policy = MachinePolicy.objects.filter(
                space=space, pk=MachinePolicy.pk_from_octopus_id(d["MachinePolicyId"]) or 0
            ).first()
            if policy is None:
                raise ApiValidationError(
                    {"MachinePolicyId": [f"No machine policy {d['MachinePolicyId']} in {space.name}."]}
                )
        e = d["Endpoint"]
        account = None
        if e["AccountId"]:
            account = Account.objects.filter(space=space, pk=Account.pk_from_octopus_id(e["AccountId"]) or 0).first()
            if account is None:
                raise ApiValidationError({"Endpoint.AccountId": [f"No account {e['AccountId']} in {space.name}."]})
        return WorkerSpec(
            name=d["Name"],
            worker_pools=list(found.values()),
            machine_policy=policy,
            is_disabled=d.get("IsDisabled", False),
            endpoint=Endpoint(
                communication_style=e["CommunicationStyle"],
                uri=e["Uri"],
                thumbprint=e["Thumbprint"],
                host=e["Host"],
                port=e["Port"],
                fingerprint=e["Fingerprint"],
                account=account,
            ),
        )

    @extend_schema(request=s.WorkerWriteSerializer, responses={201: s.WorkerSerializer})
    def create(self, request, *args, **kwargs):
        """Register a worker: the Add Worker page and an agent's `register-worker` take this same path."""
        space = self.require_edit()
        try:
            worker = workers.register_worker(
                actor=request.user,
                space=space,
                spec=self._spec(space, self._input(s.WorkerWriteSerializer).validated_data),
            )
        except ValidationError as error:
            _reraise_for_api(error, _ENDPOINT_FIELDS)
        return Response(self.get_serializer(worker).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.WorkerWriteSerializer)
    def update(self, request, *args, **kwargs):
        space = self.require_edit()
        worker = self.get_object()
        try:
            worker = workers.update_worker(
                actor=request.user,
                worker=worker,
                spec=self._spec(space, self._input(s.WorkerWriteSerializer).validated_data),
            )
        except ValidationError as error:
            _reraise_for_api(error, _ENDPOINT_FIELDS)
        return Response(self.get_serializer(worker).data)

    @extend_schema(request=s.WorkerRegistrationSerializer, responses={200: s.WorkerSerializer, 201: s.WorkerSerializer})
    @action(detail=False, methods=["post"])
    def register(self, request, *args, **kwargs):
        """An agent registers itself: the worker with its thumbprint is updated (200), else one is created
        (201); `Force` takes over a worker of the same name. A refused request changes nothing."""
        space = self.require_edit()
        d = self._input(s.WorkerRegistrationSerializer).validated_data
        try:
            registration = workers.register_tentacle(
                actor=request.user, space=space, spec=self._spec(space, d), force=d["Force"]
            )
        except ValidationError as error:
            _reraise_for_api(error, _ENDPOINT_FIELDS)
        return Response(
            self.get_serializer(registration.worker).data,
            status=status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK,
        )

    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        workers.delete_worker(actor=request.user, worker=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def connection(self, request, *args, **kwargs):
        worker = self.get_object()
        return Response(
            {
                "Id": worker.octopus_id,
                "HealthStatus": worker.health_status,
                "StatusSummary": worker.status_summary,
                "LastHealthCheck": worker.last_health_check,
                "Logs": worker.health_check_log.splitlines(),
            }
        )


class MachinePolicyViewSet(SpaceScopedViewSet):
    serializer_class = s.MachinePolicySerializer
    item_type = "MachinePolicy"
    view_permission, edit_permission, model = P.MACHINE_POLICY_VIEW, P.MACHINE_POLICY_EDIT, MachinePolicy

    def scoped_queryset(self, space):
        return self.filter_ids_and_name(MachinePolicy.objects.filter(space=space))

    @extend_schema(request=s.MachinePolicyWriteSerializer, responses={201: s.MachinePolicySerializer})
    def create(self, request, *args, **kwargs):
        space = self.require_edit()
        values = self._input(s.MachinePolicyWriteSerializer).to_service_values()
        try:
            policy = policies.create_machine_policy(actor=request.user, space=space, **values)
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MachinePolicyWriteSerializer)
    def update(self, request, *args, **kwargs):
        self.require_edit()
        policy = self.get_object()
        values = self._input(s.MachinePolicyWriteSerializer).to_service_values()
        try:
            policy = policies.update_machine_policy(actor=request.user, policy=policy, **values)
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(self.get_serializer(policy).data)

    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            policies.delete_machine_policy(actor=request.user, policy=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountViewSet(SpaceScopedViewSet):
    serializer_class = s.AccountSerializer
    item_type = "Account"
    view_permission, edit_permission, model = P.ACCOUNT_VIEW, P.ACCOUNT_EDIT, Account

    def scoped_queryset(self, space):
        queryset = Account.objects.filter(space=space)
        if self.request.query_params.get("accountType"):
            queryset = queryset.filter(account_type=self.request.query_params["accountType"])
        return self.filter_ids_and_name(queryset)

    def _save(self, account: Account | None):
        space = self.require_edit()
        data = self._input(s.AccountWriteSerializer)
        d = data.validated_data
        password = data.secret("Password") if d["AccountType"] != Account.AccountType.TOKEN else data.secret("Token")
        try:
            return accounts.save_account(
                actor=self.request.user,
                space=space,
                account=account,
                name=d["Name"],
                account_type=d["AccountType"],
                username=d["Username"],
                description=d["Description"],
                private_key=data.secret("PrivateKeyFile"),
                passphrase=data.secret("PrivateKeyPassphrase"),
                password=password,
            )
        except ValidationError as error:
            mapping = {"private_key": "PrivateKeyFile", "passphrase": "PrivateKeyPassphrase"}
            if hasattr(error, "error_dict"):
                raise ApiValidationError({mapping.get(k, k): m for k, m in error.message_dict.items()}) from None
            raise

    @extend_schema(request=s.AccountWriteSerializer, responses={201: s.AccountSerializer})
    def create(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._save(None)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.AccountWriteSerializer)
    def update(self, request, *args, **kwargs):
        self.get_space()
        return Response(self.get_serializer(self._save(self.get_object())).data)

    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            accounts.delete_account(actor=request.user, account=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServerCertificateView(APIView):
    """The server's public certificate: agents pin its thumbprint. Public, like a TLS handshake."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict})
    def get(self, request):
        certificate = certificates.current_server_certificate()
        return Response(
            {
                "Id": "certificate-global",
                "Thumbprint": certificate.thumbprint,
                "CertificatePem": certificate.certificate_pem,
                "Created": certificate.created,
                "Links": {"Self": "/api/certificates/certificate-global"},
            }
        )
