"""`/api/{spaceId}/feeds` (Reef has one: the built-in feed) and `/api/{spaceId}/packages`: list and search by
id and version, push with `POST /packages/raw` (multipart; `overwriteMode` or the older `replace=true`), delete."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from deployments.models import Package
from deployments.services import catalog, feeds
from infrastructure.api.views import SpaceScopedViewSet, _reraise_for_api
from portal.api.base import SpaceScopedSerializer
from portal.api.pagination import _non_negative
from portal.permissions import Permission as P

BUILT_IN = "feeds-builtin"


def _flag(params, name: str) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() not in ("true", "false"):
        raise ApiValidationError({name: ["Use true or false."]})
    return raw.lower() == "true"


class FeedViewSet(SpaceScopedViewSet):
    item_type = "Feed"
    view_permission, edit_permission, model = P.FEED_VIEW, P.BUILT_IN_FEED_PUSH, Package

    def scoped_queryset(self, space):
        return Package.objects.none()

    def _feed(self, space) -> dict:
        return {
            "Id": BUILT_IN,
            "SpaceId": space.octopus_id,
            "Name": "Octopus Server (built-in)",
            "FeedType": "BuiltIn",
            "IsBuiltInRepoSyncEnabled": False,
            "DeleteUnreleasedPackagesAfterDays": None,
            "PackageAcquisitionLocationOptions": ["Server", "ExecutionTarget"],
            "Links": {
                "Self": f"/api/{space.octopus_id}/feeds/{BUILT_IN}",
                "SearchPackageVersionsTemplate": f"/api/{space.octopus_id}/packages"
                "{?nuGetPackageId,filter,latest,skip,take}",
            },
        }

    @extend_schema(operation_id="feeds_list", responses={200: dict})
    def list(self, request, *args, **kwargs):
        space = self.get_space()
        params = request.query_params
        wanted = [i.strip() for i in params.get("ids", "").split(",") if i.strip()]
        items = [self._feed(space)]
        if (
            params.get("feedType") not in (None, "", "BuiltIn")
            or (wanted and BUILT_IN not in wanted)
            or (params.get("partialName") and params["partialName"].lower() not in items[0]["Name"].lower())
        ):
            items = []
        return Response(
            {
                "ItemType": "Feed",
                "TotalResults": len(items),
                "ItemsPerPage": 30,
                "NumberOfPages": 1,
                "LastPageNumber": 0,
                "Items": items,
                "Links": {"Self": request.path},
            }
        )

    @extend_schema(responses={200: dict})
    def retrieve(self, request, *args, **kwargs):
        if kwargs.get("pk") != BUILT_IN:
            raise Http404(f"Reef has one feed, {BUILT_IN}.")
        return Response(self._feed(self.get_space()))

    @extend_schema(responses={200: dict})
    def all(self, request, *args, **kwargs):
        return Response([self._feed(self.get_space())])

    def _packages(self):
        if self.kwargs.get("pk") != BUILT_IN:
            raise Http404(f"Reef has one feed, {BUILT_IN}.")
        return Package.objects.filter(space=self.get_space())

    def _page(self, request, items):
        """Octopus's paged shape over already-chosen items (`skip`, `take`)."""
        skip, take = _non_negative(request, "skip", 0), min(_non_negative(request, "take", 30), 2000)
        shown = items[skip : skip + take]
        pages = max(1, -(-len(items) // take)) if take else 1
        return Response(
            {
                "ItemType": "PackageVersion",
                "TotalResults": len(items),
                "ItemsPerPage": take,
                "NumberOfPages": pages,
                "LastPageNumber": pages - 1,
                "Items": shown,
                "Links": {"Self": request.get_full_path()},
            }
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], url_path="packages/versions", pagination_class=None)
    def versions(self, request, *args, **kwargs):
        """`?packageId=` (required) and `?filter=` (version contains): a package's versions, newest first."""
        package_id = request.query_params.get("packageId", "")
        if not package_id:
            raise ApiValidationError({"packageId": ["Name the package whose versions you want."]})
        packages = self._packages().filter(package_id=package_id).order_by("-published", "-id")
        if request.query_params.get("filter"):
            packages = packages.filter(version__icontains=request.query_params["filter"])
        space = self.get_space().octopus_id
        return self._page(
            request,
            [
                {
                    "Id": f"packages-{p.package_id}.{p.version}",
                    "PackageId": p.package_id,
                    "FeedId": BUILT_IN,
                    "Version": p.version,
                    "Published": p.published,
                    "SizeBytes": p.size,
                    "Title": p.package_id,
                    "ReleaseNotes": None,
                    "Links": {"Self": f"/api/{space}/packages/packages-{p.package_id}.{p.version}"},
                }
                for p in packages[:2000]
            ],
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], url_path="packages/search", pagination_class=None)
    def search(self, request, *args, **kwargs):
        """`?term=`: package ids containing it, each with its newest version."""
        packages = (
            self._packages()
            .filter(package_id__icontains=request.query_params.get("term", ""))
            .order_by("package_id", "-published", "-id")
        )
        newest: dict[str, Package] = {}
        for package in packages[:5000]:
            newest.setdefault(package.package_id, package)
        return self._page(
            request,
            [
                {"Id": p.package_id, "Name": p.package_id, "FeedId": BUILT_IN, "LatestVersion": p.version, "Links": {}}
                for p in newest.values()
            ],
        )


class PackageSerializer(SpaceScopedSerializer):
    self_link = "/api/{space}/packages/{id}"

    PackageId = serializers.CharField(source="package_id")
    Version = serializers.CharField(source="version")
    Published = serializers.DateTimeField(source="published")
    PackageSizeBytes = serializers.IntegerField(source="size")
    Hash = serializers.CharField(source="sha256")
    FileExtension = serializers.SerializerMethodField()
    FeedId = serializers.SerializerMethodField()
    Title = serializers.CharField(source="package_id")
    Summary = serializers.SerializerMethodField()
    Description = serializers.SerializerMethodField()

    class Meta:
        model = Package
        fields = [
            "Id",
            "SpaceId",
            "PackageId",
            "Version",
            "Published",
            "PackageSizeBytes",
            "Hash",
            "FileExtension",
            "FeedId",
            "Title",
            "Summary",
            "Description",
            "Links",
        ]

    def get_Id(self, obj) -> str:  # noqa: N802
        return f"packages-{obj.package_id}.{obj.version}"

    def get_Links(self, obj) -> dict[str, str]:  # noqa: N802
        base = f"/api/Spaces-{obj.space_id}/packages/packages-{obj.package_id}.{obj.version}"
        return {"Self": base, "Raw": f"{base}/raw"}

    def get_FileExtension(self, obj) -> str:  # noqa: N802
        name = obj.file_name.lower()
        return ".tar.gz" if name.endswith(".tar.gz") else "." + name.rsplit(".", 1)[-1]

    def get_FeedId(self, obj) -> str:  # noqa: N802
        return BUILT_IN

    def get_Summary(self, obj) -> str:  # noqa: N802
        return ""

    def get_Description(self, obj) -> str:  # noqa: N802
        return ""


class PackageUploadSerializer(serializers.Serializer):
    fileToUpload = serializers.FileField()  # noqa: N815 - the field Octopus's clients send


class PackageViewSet(SpaceScopedViewSet):
    """`?filter=` (package id contains), `?nuGetPackageId=` (exactly), `?latest=true` (newest version of each)."""

    serializer_class = PackageSerializer
    item_type = "Package"
    view_permission, edit_permission, model = P.FEED_VIEW, P.BUILT_IN_FEED_PUSH, Package

    def scoped_queryset(self, space):
        packages = Package.objects.filter(space=space)
        params = self.request.query_params
        if params.get("filter"):
            packages = packages.filter(package_id__icontains=params["filter"])
        if params.get("nuGetPackageId"):
            packages = packages.filter(package_id=params["nuGetPackageId"])
        if _flag(params, "latest"):
            newest = {}
            for pk, package_id in packages.order_by("package_id", "-published", "-id").values_list("pk", "package_id"):
                newest.setdefault(package_id, pk)
            packages = packages.filter(pk__in=newest.values())
        return packages.order_by("package_id", "-published", "-id")

    def get_object(self):
        """By Octopus's id (`packages-app.1.0.0`) or Reef's (`packages-12`)."""
        key = self.kwargs["pk"]
        packages = self.get_queryset()
        pk = Package.pk_from_octopus_id(key)
        if pk is not None and (found := packages.filter(pk=pk).first()) is not None:
            return found
        name = key.removeprefix("packages-")
        for package in packages.filter(version__in=[name.split(".", i)[-1] for i in range(1, name.count(".") + 1)]):
            if f"{package.package_id}.{package.version}" == name:
                return package
        raise Http404(f"No package {key}.")

    @extend_schema(
        request={"multipart/form-data": PackageUploadSerializer},
        responses={201: PackageSerializer, 200: PackageSerializer},
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser], pagination_class=None)
    def raw(self, request, *args, **kwargs):
        space = self.require_edit()
        params = request.query_params
        mode = params.get("overwriteMode") or ("OverwriteExisting" if _flag(params, "replace") else "FailIfExists")
        uploads = list(request.FILES.values())
        if len(uploads) != 1:
            raise ApiValidationError({"fileToUpload": ["Send exactly one file (multipart field fileToUpload)."]})
        existed = Package.objects.filter(space=space).count()
        try:
            package = feeds.push_package(actor=request.user, space=space, upload=uploads[0], overwrite_mode=mode)
        except ValidationError as error:
            if hasattr(error, "error_dict") and "overwrite_mode" in error.error_dict:
                raise ApiValidationError({"overwriteMode": error.message_dict["overwrite_mode"]}) from None
            _reraise_for_api(error)
        created = Package.objects.filter(space=space).count() > existed
        return Response(
            self.get_serializer(package).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, *args, **kwargs):
        self.require_edit()
        try:
            catalog.delete_package(actor=request.user, package=self.get_object())
        except ValidationError as error:
            _reraise_for_api(error)
        return Response(status=status.HTTP_204_NO_CONTENT)
