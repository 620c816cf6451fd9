"""Secrets at rest: Fernet under a master key (REEF_MASTER_KEY, else generated once into var/master_key).

Several keys may be given, comma-separated, newest first: the newest encrypts, any decrypts (rotation).
"""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = settings.REEF_MASTER_KEY
    if not keys:
        path = settings.VAR_DIR / "master_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(Fernet.generate_key().decode())
        keys = path.read_text().strip()
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("A stored secret cannot be decrypted with the configured master key.") from None
