"""What the portal serves to worker machines: the agent as one zipapp, and the install script.

The bundle is built from the `tentacle_agent` package with the standard library, deterministically
(fixed timestamps, sorted entries), so every server node serves the same bytes and the same SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

import tentacle_agent

BUNDLE_NAME = "reef-tentacle.pyz"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_SCRIPT = Path(__file__).with_name("install.sh")


@lru_cache(maxsize=1)
def agent_bundle() -> tuple[bytes, str]:
    """(zipapp bytes, sha256 hex). Runs as `python3 reef-tentacle.pyz <command>`."""
    package = Path(tentacle_agent.__file__).parent
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            info = zipfile.ZipInfo(str(path.relative_to(package.parent)), _FIXED_TIME)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, path.read_bytes())
        main = zipfile.ZipInfo("__main__.py", _FIXED_TIME)
        main.compress_type, main.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        archive.writestr(main, "import sys\nfrom tentacle_agent.cli import main\n\nsys.exit(main())\n")
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def install_script(server_url: str, polling_port: int) -> str:
    """The install script with the bundle's URL and SHA-256 written in, so it checks what it downloads,
    and the polling port this server really listens on."""
    _, sha256 = agent_bundle()
    return (
        _SCRIPT.read_text()
        .replace("@@BUNDLE_URL@@", f"{server_url.rstrip('/')}/infrastructure/tentacle/{BUNDLE_NAME}")
        .replace("@@BUNDLE_SHA256@@", sha256)
        .replace("@@POLLING_PORT@@", str(int(polling_port)))
        .replace("@@SERVER_URL@@", server_url.rstrip("/"))
    )


def agent_facing_url(request) -> str:
    """The address agents must use for this server: REEF_PUBLIC_URL, else the one this request came to."""
    return settings.REEF_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def polling_address(server_url: str) -> str:
    """The polling endpoint on the same host as `server_url`, at the polling port this server uses."""
    host = urlparse(server_url).hostname or "localhost"
    return f"https://{f'[{host}]' if ':' in host else host}:{settings.REEF_POLLING_PORT}/"
