from __future__ import annotations

from rest_framework import serializers

from portal.api.base import OctopusIdField, OctopusSerializer
from portal.models import ApiKey, Event, ScopedUserRole, Space, Team, User, UserRole
from portal.permissions import SPACE_PERMISSIONS, SYSTEM_PERMISSIONS


class SpaceSerializer(OctopusSerializer):
    self_link = "/api/spaces/{id}"

    Name = serializers.CharField(source="name", max_length=100)
    Slug = serializers.CharField(source="slug", read_only=True)
    Description = serializers.CharField(source="description", required=False, allow_blank=True, default="")
    IsDefault = serializers.BooleanField(source="is_default", read_only=True)
    TaskQueueStopped = serializers.BooleanField(source="task_queue_stopped", required=False, default=False)

    class Meta:
        model = Space
        fields = ["Id", "Name", "Slug", "Description", "IsDefault", "TaskQueueStopped", "Links"]

    def extra_links(self, obj):
        return {"Web": f"/{obj.octopus_id}/", "Search": f"/api/{obj.octopus_id}/search"}


class UserSerializer(OctopusSerializer):
    self_link = "/api/users/{id}"

    Username = serializers.CharField(source="username")
    DisplayName = serializers.CharField(source="display_name", allow_blank=True, required=False)
    EmailAddress = serializers.EmailField(source="email", allow_blank=True, required=False)
    IsActive = serializers.BooleanField(source="is_active", required=False)
    IsService = serializers.BooleanField(source="is_service", required=False)
    IsRequestor = serializers.SerializerMethodField()
    CanPasswordBeEdited = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "Id",
            "Username",
            "DisplayName",
            "EmailAddress",
            "IsActive",
            "IsService",
            "IsRequestor",
            "CanPasswordBeEdited",
            "Links",
        ]

    def get_IsRequestor(self, obj) -> bool:  # noqa: N802
        request = self.context.get("request")
        return bool(request and request.user.pk == obj.pk)

    def get_CanPasswordBeEdited(self, obj) -> bool:  # noqa: N802
        return not obj.is_service

    def extra_links(self, obj):
        return {"ApiKeys": f"/api/users/{obj.octopus_id}/apikeys{{/id}}{{?skip,take}}"}


class UserCreateSerializer(serializers.Serializer):
    Username = serializers.CharField(max_length=150)
    DisplayName = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    EmailAddress = serializers.EmailField(allow_blank=True, required=False, default="")
    Password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, default="", style={"input_type": "password"}
    )
    IsService = serializers.BooleanField(required=False, default=False)


class ApiKeySerializer(serializers.ModelSerializer):
    Id = serializers.CharField(source="octopus_id", read_only=True)
    Purpose = serializers.CharField(source="purpose")
    UserId = serializers.CharField(source="user.octopus_id", read_only=True)
    ApiKey = serializers.SerializerMethodField()
    Created = serializers.DateTimeField(source="created", read_only=True)
    Expires = serializers.DateTimeField(source="expires", required=False, allow_null=True)
    LastUsed = serializers.DateTimeField(source="last_used", read_only=True, allow_null=True)
    Links = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["Id", "Purpose", "UserId", "ApiKey", "Created", "Expires", "LastUsed", "Links"]

    def get_ApiKey(self, obj) -> str:  # noqa: N802
        # Octopus shows a masked key on reads; the key itself appears only in the create response.
        return self.context.get("plain_key") or f"API-…{obj.hint}"

    def get_Links(self, obj) -> dict[str, str]:  # noqa: N802
        return {
            "Self": f"/api/users/{obj.user.octopus_id}/apikeys/{obj.octopus_id}",
            "User": f"/api/users/{obj.user.octopus_id}",
        }


class ApiKeyCreateSerializer(serializers.Serializer):
    Purpose = serializers.CharField(max_length=200)
    Expires = serializers.DateTimeField(required=False, allow_null=True, default=None)


class UserRoleSerializer(OctopusSerializer):
    self_link = "/api/userroles/{id}"

    Name = serializers.CharField(source="name")
    Description = serializers.CharField(source="description")
    GrantedSpacePermissions = serializers.SerializerMethodField()
    GrantedSystemPermissions = serializers.SerializerMethodField()
    CanBeDeleted = serializers.SerializerMethodField()

    class Meta:
        model = UserRole
        fields = [
            "Id",
            "Name",
            "Description",
            "GrantedSpacePermissions",
            "GrantedSystemPermissions",
            "CanBeDeleted",
            "Links",
        ]

    def get_GrantedSpacePermissions(self, obj) -> list[str]:  # noqa: N802
        return sorted(p for p in obj.permissions if p in SPACE_PERMISSIONS)

    def get_GrantedSystemPermissions(self, obj) -> list[str]:  # noqa: N802
        return sorted(p for p in obj.permissions if p in SYSTEM_PERMISSIONS)

    def get_CanBeDeleted(self, obj) -> bool:  # noqa: N802
        return not obj.is_built_in


class TeamSerializer(OctopusSerializer):
    self_link = "/api/teams/{id}"

    Name = serializers.CharField(source="name", max_length=100)
    Description = serializers.CharField(source="description", required=False, allow_blank=True, default="")
    SpaceId = OctopusIdField(
        queryset=Space.objects.all(), source="space", required=False, allow_null=True, default=None
    )
    MemberUserIds = serializers.SerializerMethodField()
    CanBeDeleted = serializers.SerializerMethodField()
    CanBeRenamed = serializers.SerializerMethodField()
    CanChangeMembers = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = [
            "Id",
            "Name",
            "Description",
            "SpaceId",
            "MemberUserIds",
            "CanBeDeleted",
            "CanBeRenamed",
            "CanChangeMembers",
            "Links",
        ]

    def get_MemberUserIds(self, obj) -> list[str]:  # noqa: N802
        return [f"Users-{pk}" for pk in sorted(m.pk for m in obj.members.all())]

    def get_CanBeDeleted(self, obj) -> bool:  # noqa: N802
        return not obj.is_built_in

    def get_CanBeRenamed(self, obj) -> bool:  # noqa: N802
        return not obj.is_built_in

    def get_CanChangeMembers(self, obj) -> bool:  # noqa: N802
        return not obj.includes_everyone

    def extra_links(self, obj):
        return {"ScopedUserRoles": f"/api/teams/{obj.octopus_id}/scopeduserroles"}


class TeamWriteSerializer(serializers.Serializer):
    Name = serializers.CharField(max_length=100)
    Description = serializers.CharField(required=False, allow_blank=True, default="")
    SpaceId = OctopusIdField(queryset=Space.objects.all(), required=False, allow_null=True, default=None)
    MemberUserIds = serializers.ListField(child=OctopusIdField(queryset=User.objects.all()), required=False)


class ScopedUserRoleSerializer(OctopusSerializer):
    self_link = "/api/scopeduserroles/{id}"

    TeamId = OctopusIdField(queryset=Team.objects.all(), source="team")
    UserRoleId = OctopusIdField(queryset=UserRole.objects.all(), source="role")
    SpaceId = OctopusIdField(
        queryset=Space.objects.all(), source="space", required=False, allow_null=True, default=None
    )

    class Meta:
        model = ScopedUserRole
        fields = ["Id", "TeamId", "UserRoleId", "SpaceId", "Links"]


class EventSerializer(OctopusSerializer):
    self_link = "/api/events/{id}"

    Category = serializers.CharField(source="category")
    UserId = serializers.SerializerMethodField()
    Username = serializers.CharField(source="username")
    Occurred = serializers.DateTimeField(source="occurred")
    Message = serializers.CharField(source="message")
    SpaceId = serializers.SerializerMethodField()
    RelatedDocumentIds = serializers.SerializerMethodField()
    ChangeDetails = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = [
            "Id",
            "Category",
            "UserId",
            "Username",
            "Occurred",
            "Message",
            "SpaceId",
            "RelatedDocumentIds",
            "ChangeDetails",
            "Links",
        ]

    def get_UserId(self, obj) -> str | None:  # noqa: N802
        return f"Users-{obj.user_id}" if obj.user_id else None

    def get_SpaceId(self, obj) -> str | None:  # noqa: N802
        return f"Spaces-{obj.space_id}" if obj.space_id else None

    def get_RelatedDocumentIds(self, obj) -> list[str]:  # noqa: N802
        return [obj.document_id] if obj.document_id else []

    def get_ChangeDetails(self, obj) -> dict:  # noqa: N802
        return {
            "DocumentContext": {"Type": obj.document_type, "Name": obj.document_name},
            "Differences": [
                {"Field": field, "Before": change[0], "After": change[1]} for field, change in obj.changes.items()
            ],
        }
