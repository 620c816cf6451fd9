"""An agent instance's home: tentacle.json, its certificate and key, the trusted server certificate.
Everything is written owner-only."""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

DEFAULT_HOME = Path(os.environ.get("REEF_TENTACLE_HOME", Path.home() / ".reef-tentacle"))


class ConfigError(Exception):
    pass


def write_private(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)


class Instance:
    def __init__(self, home: Path):
        self.home = Path(home)
        self.config_path = self.home / "tentacle.json"
        self.cert_path = self.home / "tentacle.crt.pem"
        self.key_path = self.home / "tentacle.key.pem"
        self.trusted_path = self.home / "trusted-server.pem"

    @property
    def exists(self) -> bool:
        return self.config_path.exists()

    def load(self) -> dict:
        if not self.exists:
            raise ConfigError(f"No agent instance in {self.home}: run `tentacle create-instance --home {self.home}` first.")
        try:
            return json.loads(self.config_path.read_text())
        except ValueError as error:
            raise ConfigError(f"{self.config_path} is not valid JSON: {error}") from None

    def save(self, config: dict) -> None:
        write_private(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def create(self, key_bits: int = 2048) -> dict:
        from tentacle_agent.certificates import generate_certificate, thumbprint_of_pem

        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        certificate, key = generate_certificate("Reef Tentacle", bits=key_bits)
        write_private(self.key_path, key)
        write_private(self.cert_path, certificate)
        alphabet = string.ascii_lowercase + string.digits
        config = {"Mode": "listening", "Port": 10933, "ListenIp": "0.0.0.0",
                  "Subscription": "".join(secrets.choice(alphabet) for _ in range(20)),
                  "Thumbprint": thumbprint_of_pem(certificate), "TrustedThumbprint": None, "ServerCommsAddress": None,
                  "ServerUrl": None, "WorkerId": None, "SpaceId": None, "Proxy": None}
        self.save(config)
        return config

    def trust(self, pem: str, expected_thumbprint: str | None = None) -> str:
        """Trust a server certificate; with a thumbprint given, only if the certificate has it."""
        from tentacle_agent.certificates import normalise_thumbprint, thumbprint_of_pem

        try:
            thumbprint = thumbprint_of_pem(pem)
        except ValueError:
            raise ConfigError("That is not a PEM certificate.") from None
        if expected_thumbprint and normalise_thumbprint(expected_thumbprint) != thumbprint:
            raise ConfigError(f"The server presented certificate {thumbprint}, not the trusted {normalise_thumbprint(expected_thumbprint)}: refusing to trust it.")
        write_private(self.trusted_path, pem)
        config = self.load()
        config["TrustedThumbprint"] = thumbprint
        self.save(config)
        return thumbprint
