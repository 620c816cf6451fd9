"""The built-in feed as Octopus's clients push to it: `POST /packages/raw` names the package by its file
(`<PackageId>.<Version>.zip`), and says what to do when that version is already there."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import Package
from deployments.services import catalog
from portal.models import Space, User
from portal.permissions import Permission
from portal.services.access import require_permission

OVERWRITE_MODES = ("FailIfExists", "OverwriteExisting", "IgnoreIfExists")
_FILE_NAME_RE = re.compile(
    r"(?P<id>.+?)\.(?P<version>\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.+_-]*?)?)\.(?P<ext>zip|tar\.gz|tgz)", re.IGNORECASE
)


def package_identity(file_name: str) -> tuple[str, str]:
    """("app", "1.0.2") from "app.1.0.2.zip", as Octopus reads a pushed file's name."""
    match = _FILE_NAME_RE.fullmatch(file_name or "")
    if match is None:
        raise ValidationError(
            {
                "file": [
                    f"Name the file <PackageId>.<Version>.zip or .tar.gz, such as app.1.0.0.zip (not {file_name!r})."
                ]
            }
        )
    return match["id"], match["version"]


def push_package(*, actor: User, space: Space, upload, overwrite_mode: str = "FailIfExists") -> Package:
    """Store the upload; an existing version fails, is kept (IgnoreIfExists) or is replaced (OverwriteExisting)."""
    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=space)
    if overwrite_mode not in OVERWRITE_MODES:
        raise ValidationError({"overwrite_mode": [f"Choose one of {', '.join(OVERWRITE_MODES)}."]})
    package_id, version = package_identity(getattr(upload, "name", ""))
    existing = Package.objects.filter(space=space, package_id=package_id, version=version).first()
    if existing is not None and overwrite_mode == "IgnoreIfExists":
        return existing
    if existing is not None and overwrite_mode == "FailIfExists":
        raise ValidationError(
            {
                "file": [
                    f"The feed already has {package_id} {version}; push with overwriteMode=OverwriteExisting "
                    "(or replace=true) to replace it."
                ]
            }
        )
    with transaction.atomic():  # a failed replacement leaves the old version in place
        old_sha = None
        if existing is not None:
            old_sha = existing.sha256
            existing.delete()
        package = catalog.store_package(actor=actor, space=space, package_id=package_id, version=version, upload=upload)
    if old_sha and old_sha != package.sha256 and not Package.objects.filter(sha256=old_sha).exists():
        (catalog.packages_folder() / old_sha).unlink(missing_ok=True)
    return package
