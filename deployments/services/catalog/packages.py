"""The built-in feed: packages pushed as checked .zip or .tar.gz files, stored by SHA-256 under VAR_DIR."""

from __future__ import annotations

import hashlib
import re
import tarfile
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments.models import Package, Step
from deployments.services.catalog.steps import step_where
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event

_PACKAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,49}")


def packages_folder() -> Path:
    return Path(settings.VAR_DIR) / "packages"


def _archive_error(path: Path, file_name: str) -> str | None:
    """None if the file really is the archive its name says; zip CRCs and every tar member are read."""
    try:
        if file_name.endswith(".zip"):
            if not zipfile.is_zipfile(path):
                return f"{file_name} is not a valid zip archive."
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    return f"{file_name} is a damaged zip archive."
        else:
            with open(path, "rb") as f:
                if f.read(2) != b"\x1f\x8b":
                    return f"{file_name} is not a valid tar.gz archive (it is not gzip-compressed)."
            with tarfile.open(path, "r:gz") as archive:
                archive.getmembers()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError):
        return f"{file_name} is not a valid {'zip' if file_name.endswith('.zip') else 'tar.gz'} archive."
    return None


def store_package(*, actor: User, space: Space, package_id: str, version: str, upload) -> Package:
    """Push a .zip or .tar.gz to the built-in feed: checked, hashed, and kept under VAR_DIR/packages/<sha256>."""
    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=space)
    package_id, version, file_name = (
        (package_id or "").strip(),
        (version or "").strip(),
        (getattr(upload, "name", "") or ""),
    )
    errors = {}
    if not _PACKAGE_ID_RE.fullmatch(package_id):
        errors["package_id"] = ["Letters, digits, dots, dashes and underscores, starting with a letter or digit."]
    if not version:
        errors["version"] = ["Give the package a version, such as 1.0.0."]
    elif not _VERSION_RE.fullmatch(version):
        errors["version"] = ["A version is letters, digits, dots, pluses, dashes and underscores, such as 1.0.0."]
    if not file_name.lower().endswith((".zip", ".tar.gz", ".tgz")):
        errors["file"] = ["Upload a .zip or .tar.gz file."]
    elif Package.objects.filter(space=space, package_id=package_id, version=version).exists():
        errors["version"] = [f"The feed already has {package_id} {version}."]
    if errors:
        raise ValidationError(errors)
    folder = packages_folder()
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".upload-{uuid.uuid4().hex}"
    try:
        digest, size = hashlib.sha256(), 0
        with open(partial, "wb") as out:
            for chunk in upload.chunks():
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if error := _archive_error(partial, file_name.lower()):
            raise ValidationError({"file": [error]})
        sha256 = digest.hexdigest()
        with transaction.atomic():
            try:
                package = Package.objects.create(
                    space=space,
                    package_id=package_id,
                    version=version,
                    file_name=file_name[-200:],
                    sha256=sha256,
                    size=size,
                )
            except IntegrityError:
                raise ValidationError({"version": [f"The feed already has {package_id} {version}."]}) from None
            partial.replace(folder / sha256)  # same content, same name: a re-push of identical bytes is harmless
            record_event(
                actor=actor,
                category=Event.Category.CREATED,
                document=package,
                space=space,
                message=f"Package {package_id} {version} was pushed to the built-in feed",
                changes={"sha256": [None, sha256], "size": [None, size]},
            )
        return package
    finally:
        partial.unlink(missing_ok=True)


@transaction.atomic
def delete_package(*, actor: User, package: Package) -> None:
    """Refused while a step pins this version, or references the id and this is its only version."""
    require_permission(actor, Permission.BUILT_IN_FEED_PUSH, space=package.space)
    only_version = (
        not Package.objects.filter(space=package.space, package_id=package.package_id).exclude(pk=package.pk).exists()
    )
    users = []
    for step in Step.objects.filter(project__space=package.space).select_related("project", "runbook"):
        for reference in step.packages or []:
            if reference.get("PackageId") == package.package_id and (
                reference.get("Version") == package.version or (not reference.get("Version") and only_version)
            ):
                users.append(f"step {step.name} of {step_where(step)}")
    if users:
        raise ValidationError(f"{package} is referenced by: " + "; ".join(users) + ".")
    record_event(actor=actor, category=Event.Category.DELETED, document=package, space=package.space)
    package.delete()
    if not Package.objects.filter(sha256=package.sha256).exists():
        (packages_folder() / package.sha256).unlink(missing_ok=True)
