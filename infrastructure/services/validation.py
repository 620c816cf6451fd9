"""Shape checks for endpoints: URIs, thumbprints, SSH hosts and fingerprints."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlparse

from infrastructure.models import SUBSCRIPTION_URI_RE, THUMBPRINT_RE

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_SHA256_FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
_MD5_FINGERPRINT_RE = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")


def normalise_thumbprint(value: str) -> str:
    return re.sub(r"[\s:]", "", value or "").upper()


def thumbprint_error(value: str) -> str | None:
    if not THUMBPRINT_RE.match(value):
        return "A thumbprint is 40 hexadecimal characters (the SHA-1 of the agent's certificate)."
    return None


def host_error(host: str) -> str | None:
    if not host:
        return "Give the host name or address."
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    return None if _HOSTNAME_RE.match(host) else f"{host!r} is not a valid host name or address."


def listening_uri_error(uri: str) -> str | None:
    try:
        parsed = urlparse(uri)
        port = parsed.port
    except ValueError:
        return f"{uri!r} is not a valid URI."
    if parsed.scheme != "https" or not parsed.hostname or parsed.path not in ("", "/") or parsed.query:
        return "A listening tentacle's URI looks like https://HOST:10933/."
    if port is not None and not 0 < port < 65536:
        return "The port must be between 1 and 65535."
    return host_error(parsed.hostname)


def polling_uri_error(uri: str) -> str | None:
    if not SUBSCRIPTION_URI_RE.match(uri):
        return "A polling tentacle's URI looks like poll://SUBSCRIPTIONID/ (lowercase letters and digits)."
    return None


def fingerprint_error(fingerprint: str) -> str | None:
    if _SHA256_FINGERPRINT_RE.match(fingerprint) or _MD5_FINGERPRINT_RE.match(fingerprint):
        return None
    return "A host key fingerprint looks like SHA256:… (43 base64 characters) as ssh-keygen -l prints it."
