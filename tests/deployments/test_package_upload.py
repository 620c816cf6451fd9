"""Library ➜ Packages: a real zip or tar.gz is checked, hashed and stored under VAR_DIR/packages/<sha256>;
a file that is not really the archive it claims to be is refused; a version is required and unique."""

import hashlib
import io
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Package
from deployments.services import catalog

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "<h1>hello</h1>")
    return buffer.getvalue()


def tar_gz_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("index.html")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    return buffer.getvalue()


def _upload(client, space, name: str, content: bytes, version: str = "1.0.0", package_id: str = "website"):
    return client.post(
        f"/{space.octopus_id}/library/packages/",
        {"package_id": package_id, "version": version, "file": SimpleUploadedFile(name, content)},
    )


@pytest.mark.parametrize("name, make", [("website.1.0.0.zip", zip_bytes), ("website.1.0.0.tar.gz", tar_gz_bytes)])
def test_a_real_archive_is_stored_by_its_sha256(page_client, administrator, space, var_dir, name, make):
    content = make()
    response = _upload(page_client(administrator), space, name, content)
    assert response.status_code == 302
    package = Package.objects.get()
    assert (package.package_id, package.version, package.size, package.file_name) == (
        "website",
        "1.0.0",
        len(content),
        name,
    )
    assert package.sha256 == hashlib.sha256(content).hexdigest()
    assert (var_dir / "packages" / package.sha256).read_bytes() == content
    assert [p.name for p in (var_dir / "packages").iterdir()] == [package.sha256]  # no partial upload left behind
    assert "website" in page_client(administrator).get(f"/{space.octopus_id}/library/packages/").content.decode()


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("website.zip", b"PK but not really a zip", "is not a valid zip archive"),
        ("website.tar.gz", b"plain text, not gzip", "not gzip-compressed"),
        ("website.tar.gz", b"\x1f\x8b\x08\x00garbage", "is not a valid tar.gz archive"),
        ("website.exe", zip_bytes(), "Upload a .zip or .tar.gz file"),
    ],
)
def test_a_file_that_is_not_an_archive_is_refused_and_nothing_is_stored(
    page_client, administrator, space, var_dir, name, content, words
):
    response = _upload(page_client(administrator), space, name, content)
    assert (
        response.status_code == 400
        and 'data-field="file">' in response.content.decode()
        and words in response.content.decode()
    )
    assert not Package.objects.exists()
    assert not (var_dir / "packages").exists() or not list((var_dir / "packages").iterdir())


def test_a_version_is_required_and_a_package_version_is_pushed_once(page_client, administrator, space):
    client = page_client(administrator)
    missing = _upload(client, space, "website.zip", zip_bytes(), version="")
    assert missing.status_code == 400 and 'data-field="version">' in missing.content.decode()
    assert _upload(client, space, "website.zip", zip_bytes()).status_code == 302
    again = _upload(client, space, "website.zip", tar_gz_bytes())
    assert again.status_code == 400 and "The feed already has website 1.0.0." in again.content.decode()
    assert Package.objects.count() == 1


def test_pushing_needs_the_feed_permission(page_client, project_viewer, space):
    assert _upload(page_client(project_viewer), space, "website.zip", zip_bytes()).status_code == 403
    assert not Package.objects.exists()


def test_a_package_a_step_references_is_not_deleted(administrator, project):
    package = catalog.store_package(
        actor=administrator,
        space=project.space,
        package_id="website",
        version="1.0.0",
        upload=SimpleUploadedFile("w.zip", zip_bytes()),
    )
    catalog.save_step(
        actor=administrator,
        project=project,
        name="Deploy",
        location="Server",
        script_body="ls",
        packages=[{"PackageId": "website", "Version": ""}],
    )
    with pytest.raises(Exception, match="referenced by: step Deploy of the deployment process of Hello"):
        catalog.delete_package(actor=administrator, package=package)
    assert Package.objects.filter(pk=package.pk).exists()
