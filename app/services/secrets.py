"""Tenant secrets at rest: Fernet-encrypted with the service's key; never returned or logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from app.logging import get_logger

log = get_logger(__name__)


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._key = key
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise SecretBoxError(
                "PIM_ROLLOUT_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    @classmethod
    def from_settings(cls, secret_key: SecretStr | None, key_file: Path) -> SecretBox:
        """Use the configured key, else a key file beside the database, created on first use."""
        if secret_key is not None:
            return cls(secret_key.get_secret_value().encode())
        if key_file.is_file():
            return cls(key_file.read_bytes().strip())
        key = Fernet.generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        log.warning("secrets.key_file_created", path=str(key_file))
        return cls(key)

    def derive_key(self, purpose: bytes) -> str:
        """A key for another use (e.g. signing UI cookies), derived so it never equals ours.

        Replicas sharing the secret key derive the same value.
        """
        return hmac.new(self._key, purpose, hashlib.sha256).hexdigest()

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken:
            raise SecretBoxError(
                "cannot decrypt a stored tenant secret: the secret key changed since it was stored"
            ) from None
        return {str(k): str(v) for k, v in data.items()}
