"""The package cache: files kept by SHA-256, so a package crosses the network to a worker once.

Least-recently-used packages are evicted past a retention limit, so disks do not fill.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PackageError(Exception):
    pass


class PackageCache:
    def __init__(self, root: Path, limit_bytes: int = 5 * 1024 ** 3):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limit = limit_bytes
        self.lock = threading.Lock()

    def _path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise PackageError("A package is named by its SHA-256: 64 lowercase hexadecimal characters.")
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        path = self._path(sha256)
        if path.exists():
            os.utime(path)  # recently used
            return True
        return False

    def add(self, sha256: str, data: bytes, file_name: str = "") -> None:
        path = self._path(sha256)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise PackageError(f"The package's SHA-256 is {actual}, not {sha256}: rejected.")
        with self.lock:
            temporary = path.with_suffix(".part")
            temporary.write_bytes(data)
            (self.root / f"{sha256}.name").write_text(os.path.basename(file_name) or "package")
            temporary.replace(path)
            self._evict(keep=sha256)

    def extract(self, sha256: str, destination: Path) -> None:
        path = self._path(sha256)
        name = (self.root / f"{sha256}.name").read_text() if (self.root / f"{sha256}.name").exists() else ""
        destination.mkdir(parents=True, exist_ok=True)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if Path(member).is_absolute() or ".." in Path(member).parts:
                        raise PackageError(f"The package holds an unsafe path {member!r}.")
                archive.extractall(destination)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                archive.extractall(destination, filter="data")
        else:
            shutil.copyfile(path, destination / (name or sha256))

    def _evict(self, keep: str) -> None:
        files = [p for p in self.root.iterdir() if _SHA256.match(p.name)]
        total = sum(p.stat().st_size for p in files)
        for path in sorted(files, key=lambda p: p.stat().st_mtime):
            if total <= self.limit:
                break
            if path.name == keep:
                continue
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            (self.root / f"{path.name}.name").unlink(missing_ok=True)
