"""An agent instance's home: `tentacle.json`, its certificate and key, the trusted server certificate,
the work folders and the package cache. Secrets are written owner-only (0600) in a 0700 folder.

The API key used to register is never part of the configuration: it is used once and forgotten.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

from tentacle_agent.certificates import (
    DEFAULT_KEY_BITS,
    generate_certificate,
    normalise_thumbprint,
    thumbprint_of_pem,
    write_private_file,
)

DEFAULT_HOME = Path(os.environ.get("REEF_TENTACLE_HOME") or Path.home() / ".reef-tentacle")
DEFAULT_LISTENING_PORT = 10933
DEFAULT_POLLING_PORT = 10943
DEFAULT_PACKAGE_CACHE_LIMIT = 5 * 1024**3
DEFAULT_MAX_REQUEST_BYTES = 512 * 1024 * 1024
LISTENING, POLLING = "listening", "polling"


class ConfigError(Exception):
    """The instance is missing or its configuration cannot be used; the message says what to run."""


def new_subscription_id() -> str:
    """20 random lowercase alphanumerics: the polling agent's address, `poll://<id>/`."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def default_config(thumbprint: str) -> dict:
    return {
        "Mode": LISTENING,
        "ListenIp": "0.0.0.0",
        "Port": DEFAULT_LISTENING_PORT,
        "Subscription": new_subscription_id(),
        "Thumbprint": thumbprint,
        "TrustedThumbprint": None,
        "ServerUrl": None,
        "ServerCommsAddress": None,
        "Proxy": None,
        "SpaceId": None,
        "WorkerId": None,
        "WorkerName": None,
        "PackageCacheLimitBytes": DEFAULT_PACKAGE_CACHE_LIMIT,
        "MaxRequestBytes": DEFAULT_MAX_REQUEST_BYTES,
    }


class Instance:
    """The files of one agent instance. `load()` and `save()` read and write its configuration."""

    def __init__(self, home: Path):
        self.home = Path(home).expanduser()
        self.config_path = self.home / "tentacle.json"
        self.cert_path = self.home / "tentacle.crt.pem"
        self.key_path = self.home / "tentacle.key.pem"
        self.trusted_path = self.home / "trusted-server.pem"
        self.work_path = self.home / "Work"
        self.packages_path = self.home / "Packages"

    @property
    def exists(self) -> bool:
        return self.config_path.exists()

    def load(self) -> dict:
        if not self.exists:
            raise ConfigError(
                f"No agent instance in {self.home}: run `tentacle create-instance --home {self.home}` first."
            )
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ConfigError(f"{self.config_path} is not valid JSON ({error}).") from None
        if not isinstance(config, dict) or not config.get("Thumbprint"):
            raise ConfigError(f"{self.config_path} is not an agent configuration.")
        return config

    def save(self, config: dict) -> None:
        write_private_file(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def create(self, key_bits: int = DEFAULT_KEY_BITS, certificate: tuple[str, str] | None = None) -> dict:
        """A new configuration and certificate. `certificate` = (certificate PEM, key PEM) reuses a key pair."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        certificate_pem, key_pem = certificate or generate_certificate(bits=key_bits)
        write_private_file(self.key_path, key_pem)
        write_private_file(self.cert_path, certificate_pem)
        self.trusted_path.unlink(missing_ok=True)
        config = default_config(thumbprint_of_pem(certificate_pem))
        self.save(config)
        return config

    def replace_certificate(self, key_bits: int = DEFAULT_KEY_BITS) -> str:
        config = self.load()
        certificate_pem, key_pem = generate_certificate(bits=key_bits)
        write_private_file(self.key_path, key_pem)
        write_private_file(self.cert_path, certificate_pem)
        config["Thumbprint"] = thumbprint_of_pem(certificate_pem)
        self.save(config)
        return config["Thumbprint"]

    def trust(self, certificate_pem: str, expected_thumbprint: str | None = None) -> str:
        """Trust the Reef server's certificate. With a thumbprint given, only if the certificate has it."""
        try:
            thumbprint = thumbprint_of_pem(certificate_pem)
        except ValueError:
            raise ConfigError("That is not a PEM certificate.") from None
        if expected_thumbprint and normalise_thumbprint(expected_thumbprint) != thumbprint:
            raise ConfigError(
                f"The server's certificate has thumbprint {thumbprint}, not the trusted "
                f"{normalise_thumbprint(expected_thumbprint)}: refusing to trust it."
            )
        config = self.load()
        write_private_file(self.trusted_path, certificate_pem)
        config["TrustedThumbprint"] = thumbprint
        self.save(config)
        return thumbprint

    def trusted_pem(self) -> str | None:
        return self.trusted_path.read_text(encoding="utf-8") if self.trusted_path.exists() else None
