"""The package cache: files kept by SHA-256, so a package crosses the network to a worker once.

A retention limit in bytes keeps the disk from filling: past it, the least recently used packages
are evicted (a package is "used" when it is uploaded, asked about or extracted). A package whose
bytes do not hash to the name it was sent under is rejected.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import threading
import time
import zipfile
from pathlib import Path

log = logging.getLogger("tentacle.packages")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PackageError(Exception):
    """A package request that cannot be honoured; the message says why."""


class PackageCache:
    def __init__(self, root: Path, limit_bytes: int = 5 * 1024**3):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limit_bytes = int(limit_bytes)
        # Held while adding, evicting and extracting, so a package is never evicted half-extracted.
        self.lock = threading.RLock()

    def _path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
            raise PackageError("A package is named by its SHA-256: 64 hexadecimal characters.")
        return self.root / sha256.lower()

    def _touch(self, path: Path) -> None:
        now = time.time()
        os.utime(path, (now, now))

    def has(self, sha256: str) -> bool:
        path = self._path(sha256)
        with self.lock:
            if path.is_file():
                self._touch(path)
                return True
            return False

    def add(self, sha256: str, data: bytes, file_name: str = "") -> None:
        path = self._path(sha256)
        actual = hashlib.sha256(data).hexdigest()
        if actual != path.name:
            raise PackageError(f"The package's SHA-256 is {actual}, not {path.name}: rejected.")
        with self.lock:
            temporary = path.with_name(path.name + ".part")
            temporary.write_bytes(data)
            os.replace(temporary, path)
            self._touch(path)
            self._name_path(path.name).write_text(os.path.basename(file_name or "") or "package", encoding="utf-8")
            self._evict(keep=path.name)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._packages())

    def extract(self, sha256: str, destination: Path) -> None:
        """Unpack a zip or tar package into `destination`; any other file is copied there under its name."""
        path = self._path(sha256)
        with self.lock:
            if not path.is_file():
                raise PackageError(f"Package {path.name} is not in this agent's cache: upload it first.")
            self._touch(path)
            destination.mkdir(parents=True, exist_ok=True)
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        _refuse_unsafe(member)
                    archive.extractall(destination)
            elif tarfile.is_tarfile(path):
                with tarfile.open(path) as archive:
                    if hasattr(tarfile, "data_filter"):  # 3.12, and security releases of 3.9 to 3.11
                        archive.extractall(destination, filter="data")
                    else:
                        for entry in archive.getmembers():
                            _refuse_unsafe(entry.name)
                            if entry.issym() or entry.islnk() or entry.isdev():
                                raise PackageError(f"The package holds a link or device {entry.name!r}.")
                        archive.extractall(destination)
            else:
                name_path = self._name_path(path.name)
                name = name_path.read_text(encoding="utf-8") if name_path.exists() else path.name
                shutil.copyfile(path, destination / name)

    def _name_path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.name"

    def _packages(self) -> list[Path]:
        return [p for p in self.root.iterdir() if _SHA256.match(p.name)]

    def _evict(self, keep: str) -> None:
        packages = self._packages()
        total = sum(p.stat().st_size for p in packages)
        for path in sorted(packages, key=lambda p: p.stat().st_mtime):  # least recently used first
            if total <= self.limit_bytes:
                return
            if path.name == keep:
                continue
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            self._name_path(path.name).unlink(missing_ok=True)
            log.info("evicted package %s to stay within %d bytes", path.name, self.limit_bytes)
        if total > self.limit_bytes:
            log.warning(
                "package %s alone is larger than the cache's %d-byte limit; kept until the next upload",
                keep,
                self.limit_bytes,
            )


def _refuse_unsafe(member: str) -> None:
    parts = Path(member).parts
    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise PackageError(f"The package holds an unsafe path {member!r}.")
