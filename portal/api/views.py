"""The portal's REST API: spaces, users, API keys, teams, roles, events."""

from __future__ import annotations

import django_filters
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import serializers as s
from portal.models import ApiKey, Event, ScopedUserRole, Space, Team, User, UserRole
from portal.permissions import Permission as P
from portal.services import api_keys, spaces, teams, users
from portal.services.access import get_space_for_user, has_permission, require_permission, spaces_visible_to
from portal.services.audit import events_visible_to

VERSION = "0.1.0"
# The Octopus Server version whose REST API Reef answers in: Octopus's own clients read `Version` from the root
# document and refuse the executions API (releases/create/v1, …) below 2022.3.
OCTOPUS_VERSION = "2024.1.0"


class ApiRootView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(
            {
                "Application": "Reef",
                "Version": OCTOPUS_VERSION,
                "ReefVersion": VERSION,
                "ApiVersion": "3.0.0",
                "Links": {
                    "Self": "/api",
                    "Spaces": "/api/spaces{/id}{?skip,take,ids,partialName}",
                    "SpacesAll": "/api/spaces/all",
                    "CurrentUser": "/api/users/me",
                    "Users": "/api/users{/id}{?skip,take,ids,filter}",
                    "Teams": "/api/teams{/id}{?skip,take,ids,partialName,spaces}",
                    "UserRoles": "/api/userroles{/id}{?skip,take,ids,partialName}",
                    "ScopedUserRoles": "/api/scopeduserroles{/id}",
                    "Events": "/api/events{/id}"
                    "{?skip,take,from,to,users,regarding,eventCategories,spaces,documentTypes}",
                    "WorkerPools": "/api/workerpools{/id}{?skip,take,ids,partialName}",
                    "Workers": "/api/workers{/id}"
                    "{?skip,take,name,healthStatuses,communicationStyles,isDisabled,workerPoolIds}",
                    "MachinePolicies": "/api/machinepolicies{/id}{?skip,take,ids,partialName}",
                    "ServerCertificate": "/api/certificates/certificate-global",
                    "Schema": "/api/schema",
                    "SwaggerUI": "/api/schema/docs",
                },
            }
        )


class OctopusViewSetMixin:
    """`/all` as Octopus serves it: every visible item, unpaged; `ids` and `partialName` filters."""

    item_type = ""
    name_field = "name"

    def filter_ids_and_name(self, queryset):
        params = self.request.query_params
        if params.get("ids"):
            model = queryset.model
            pks = [model.pk_from_octopus_id(i.strip()) for i in params["ids"].split(",")]
            queryset = queryset.filter(pk__in=[pk for pk in pks if pk is not None])
        if params.get("partialName"):
            queryset = queryset.filter(**{f"{self.name_field}__icontains": params["partialName"]})
        return queryset

    @action(detail=False, methods=["get"], pagination_class=None)
    def all(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        return Response(self.get_serializer(queryset, many=True).data)


class SpaceViewSet(OctopusViewSetMixin, viewsets.ModelViewSet):
    serializer_class = s.SpaceSerializer
    item_type = "Space"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return self.filter_ids_and_name(spaces_visible_to(self.request.user))

    def get_object(self):
        return get_space_for_user(self.request.user, self.kwargs["pk"])

    def perform_create(self, serializer):
        require_permission(self.request.user, P.SPACE_CREATE)
        data = serializer.validated_data
        serializer.instance = spaces.create_space(
            actor=self.request.user, name=data["name"], description=data.get("description", "")
        )

    def perform_update(self, serializer):
        require_permission(self.request.user, P.SPACE_EDIT)
        data = serializer.validated_data
        serializer.instance = spaces.update_space(
            actor=self.request.user,
            space=serializer.instance,
            name=data.get("name"),
            description=data.get("description"),
            task_queue_stopped=data.get("task_queue_stopped"),
        )

    def perform_destroy(self, instance):
        require_permission(self.request.user, P.SPACE_DELETE)
        spaces.delete_space(actor=self.request.user, space=instance)


class UserViewSet(OctopusViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.UserSerializer
    item_type = "User"
    name_field = "username"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        user = self.request.user
        queryset = User.objects.all() if has_permission(user, P.USER_VIEW) else User.objects.filter(pk=user.pk)
        return self.filter_ids_and_name(queryset)

    def get_object(self):
        if self.kwargs["pk"] == "me":
            return self.request.user
        pk = User.pk_from_octopus_id(self.kwargs["pk"])
        return get_object_or_404(self.get_queryset(), pk=pk)

    @extend_schema(request=s.UserCreateSerializer, responses={201: s.UserSerializer})
    def create(self, request):
        require_permission(request.user, P.USER_EDIT)
        data = s.UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = users.create_user(
            actor=request.user,
            username=v["Username"],
            password=v["Password"] or None,
            display_name=v["DisplayName"],
            email=v["EmailAddress"],
            is_service=v["IsService"],
        )
        return Response(self.get_serializer(user).data, status=status.HTTP_201_CREATED)

    @action(detail=False, methods=["get"])
    def me(self, request):
        return Response(self.get_serializer(request.user).data)


class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """`/api/users/{userId}/apikeys`: a user's own keys; others' only with UserEdit."""

    serializer_class = s.ApiKeySerializer
    item_type = "ApiKey"
    lookup_value_regex = r"[^/]+"

    def get_owner(self) -> User:
        user = self.request.user
        if self.kwargs["user_id"] == "me":
            return user
        owner = User.objects.filter(pk=User.pk_from_octopus_id(self.kwargs["user_id"]) or 0).first()
        if owner is None or (owner.pk != user.pk and not has_permission(user, P.USER_VIEW)):
            raise Http404("No such user.")
        return owner

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        return ApiKey.objects.filter(user=self.get_owner(), revoked__isnull=True).select_related("user")

    def get_object(self):
        pk = self.kwargs["pk"].removeprefix("apikeys-")
        if not pk.isdigit():
            raise Http404("No such API key.")
        return get_object_or_404(self.get_queryset(), pk=int(pk))

    def _require_edit(self, owner: User) -> None:
        if owner.pk != self.request.user.pk:
            require_permission(self.request.user, P.USER_EDIT)

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeySerializer})
    def create(self, request, user_id):
        owner = self.get_owner()
        self._require_edit(owner)
        data = s.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, plain = api_keys.create_api_key(
            actor=request.user,
            user=owner,
            purpose=data.validated_data["Purpose"],
            expires=data.validated_data["Expires"],
        )
        body = s.ApiKeySerializer(api_key, context={"plain_key": plain}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def perform_destroy(self, instance):
        self._require_edit(instance.user)
        api_keys.revoke_api_key(actor=self.request.user, api_key=instance)


class UserRoleViewSet(OctopusViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Roles are seen with UserRoleView, or by whoever may edit a space's teams (they grant roles there)."""

    serializer_class = s.UserRoleSerializer
    item_type = "UserRole"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):
            return UserRole.objects.none()
        if not has_permission(user, P.USER_ROLE_VIEW) and not any(
            has_permission(user, P.TEAM_EDIT, space=space) for space in spaces_visible_to(user)
        ):
            require_permission(user, P.USER_ROLE_VIEW)
        return self.filter_ids_and_name(UserRole.objects.all())

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=UserRole.pk_from_octopus_id(self.kwargs["pk"]))


class TeamViewSet(OctopusViewSetMixin, viewsets.ModelViewSet):
    serializer_class = s.TeamSerializer
    item_type = "Team"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        queryset = teams.teams_visible_to(self.request.user).prefetch_related("members")
        if self.request.query_params.get("spaces"):
            pks = [Space.pk_from_octopus_id(i) for i in self.request.query_params["spaces"].split(",")]
            queryset = queryset.filter(space__in=[pk for pk in pks if pk])
        return self.filter_ids_and_name(queryset.order_by("name"))

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=Team.pk_from_octopus_id(self.kwargs["pk"]))

    def _validated(self, request) -> dict:
        data = s.TeamWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return data.validated_data

    @extend_schema(request=s.TeamWriteSerializer)
    def create(self, request):
        v = self._validated(request)
        space = v["SpaceId"]
        if space is not None:
            space = get_space_for_user(request.user, space.octopus_id)
        teams.require_team_edit(request.user, space)
        team = teams.create_team(
            actor=request.user,
            name=v["Name"],
            description=v["Description"],
            space=space,
            members=v.get("MemberUserIds", []),
        )
        return Response(self.get_serializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.TeamWriteSerializer)
    def update(self, request, pk=None, partial=False):
        team = self.get_object()
        teams.require_team_edit(request.user, team.space)
        v = self._validated(request)
        if v["SpaceId"] != team.space:
            return Response(
                {
                    "ErrorMessage": "There was a problem with your request.",
                    "Errors": ["SpaceId: A team cannot move between spaces."],
                    "Details": {"SpaceId": ["A team cannot move between spaces."]},
                },
                status=400,
            )
        team = teams.update_team(
            actor=request.user, team=team, name=v["Name"], description=v["Description"], members=v.get("MemberUserIds")
        )
        return Response(self.get_serializer(team).data)

    def perform_destroy(self, instance):
        teams.require_team_edit(self.request.user, instance.space)
        teams.delete_team(actor=self.request.user, team=instance)

    @extend_schema(responses=s.ScopedUserRoleSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def scopeduserroles(self, request, pk=None):
        team = self.get_object()
        roles = ScopedUserRole.objects.filter(team=team).select_related("role", "space")
        return Response(s.ScopedUserRoleSerializer(roles, many=True).data)


class ScopedUserRoleViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.ScopedUserRoleSerializer
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return ScopedUserRole.objects.filter(team__in=teams.teams_visible_to(self.request.user))

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=ScopedUserRole.pk_from_octopus_id(self.kwargs["pk"]))

    def perform_create(self, serializer):
        v = serializer.validated_data
        team = get_object_or_404(teams.teams_visible_to(self.request.user), pk=v["team"].pk)
        teams.require_team_edit(self.request.user, team.space)
        if v["space"] is None or team.space is None:
            require_permission(self.request.user, P.CONFIGURE_SERVER)  # granting across spaces is a server matter
        serializer.instance = teams.assign_role(actor=self.request.user, team=team, role=v["role"], space=v["space"])

    def perform_destroy(self, instance):
        teams.require_team_edit(self.request.user, instance.team.space)
        teams.remove_role(actor=self.request.user, scoped_role=instance)


class EventFilter(django_filters.FilterSet):
    # Octopus's query names.
    to = django_filters.IsoDateTimeFilter(field_name="occurred", lookup_expr="lte")
    regarding = django_filters.BaseInFilter(field_name="document_id")
    eventCategories = django_filters.BaseInFilter(field_name="category")  # noqa: N815
    documentTypes = django_filters.BaseInFilter(field_name="document_type")  # noqa: N815
    users = django_filters.CharFilter(method="filter_users")
    spaces = django_filters.CharFilter(method="filter_spaces")

    class Meta:
        model = Event
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.filters["from"] = django_filters.IsoDateTimeFilter(field_name="occurred", lookup_expr="gte")

    def filter_users(self, queryset, name, value):
        pks = [User.pk_from_octopus_id(i.strip()) for i in value.split(",")]
        return queryset.filter(user__in=[pk for pk in pks if pk])

    def filter_spaces(self, queryset, name, value):
        pks = [Space.pk_from_octopus_id(i.strip()) for i in value.split(",")]
        return queryset.filter(space__in=[pk for pk in pks if pk])


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.EventSerializer
    filterset_class = EventFilter
    item_type = "Event"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return events_visible_to(self.request.user)

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=Event.pk_from_octopus_id(self.kwargs["pk"]))
