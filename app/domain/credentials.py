"""Checks on a tenant's credential material, made when it is given rather than at first use.

azure-identity refuses some of it only when the credential is built or a token asked for: an
empty client secret (``ValueError: secret should be a Microsoft Entra application's client
secret``, ``ClientSecretCredential.__init__``), a certificate whose private key is missing,
encrypted without a password, or not RSA (``get_client_credential`` in
``azure/identity/_credentials/certificate.py``). The same rules are checked here, plus mistakes
that only Entra would report later: the secret's ID given instead of its value, a key that does
not belong to the certificate.

Messages never contain the secret or the key.
"""

from __future__ import annotations

import re
from uuid import UUID

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

MAX_SECRET_LENGTH = 1024
MAX_PEM_LENGTH = 64 * 1024
_PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN ((RSA |ENCRYPTED )?PRIVATE KEY)-----")
_ENCRYPTED = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED")


def check_client_secret(value: str) -> None:
    """Raise ``ValueError`` saying what is wrong with a client secret's shape."""
    if not value:
        # azure-identity's own rule: ClientSecretCredential refuses a falsy secret.
        raise ValueError("must not be empty: give the client secret's Value")
    if len(value) > MAX_SECRET_LENGTH:
        raise ValueError(f"is longer than {MAX_SECRET_LENGTH} characters: not a client secret")
    if value != value.strip():
        raise ValueError("must not start or end with spaces (copied with the secret?)")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters or line breaks")
    if _is_guid(value):
        raise ValueError(
            "is a GUID, which is what the portal shows as the secret's ID: give the secret's "
            "Value (shown once, when the secret was created)"
        )


def _is_guid(value: str) -> bool:
    try:
        UUID(value.strip("{}"))
    except ValueError:
        return False
    return True


def check_certificate_pem(pem: str) -> None:
    """The PEM holds a certificate and a private key; an unencrypted key is checked too."""
    data = _pem_bytes(pem)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(
            "holds no certificate that parses: give the PEM with the private key and the "
            "certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    if not _PRIVATE_KEY_BLOCK.search(data):
        raise ValueError(
            "holds no private key: give the PEM with the private key "
            "(-----BEGIN PRIVATE KEY-----) and the certificate"
        )
    if not is_encrypted(pem):
        _check_key(data, None)


def check_certificate_password(pem: str, password: str | None) -> None:
    """The password opens the (encrypted) key, which is then checked; none for a plain key."""
    encrypted = is_encrypted(pem)
    if encrypted and password is None:
        raise ValueError("the private key is encrypted: give certificate_password")
    if not encrypted and password is not None:
        raise ValueError("the private key is not encrypted: leave certificate_password out")
    if encrypted and password is not None:
        _check_key(_pem_bytes(pem), password)


def is_encrypted(pem: str) -> bool:
    return bool(_ENCRYPTED.search(pem.encode("ascii", errors="replace")))


def _check_key(data: bytes, password: str | None) -> None:
    """The private key opens, is RSA, and belongs to the (first) certificate."""
    try:
        # The RSA consistency check costs 0.1-1 s and would run on the event loop while the
        # request body is parsed; comparing the public key with the certificate's catches a
        # wrong or damaged key here (azure-identity checks it fully when it builds the
        # credential).
        key = serialization.load_pem_private_key(
            data,
            password.encode() if password is not None else None,
            unsafe_skip_rsa_key_validation=True,
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if password is not None:
            raise ValueError("does not open the private key: check certificate_password") from None
        raise ValueError("the private key does not parse") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(
            "the private key must be RSA: Entra signs client assertions with RS256 "
            "(azure-identity refuses other keys)"
        )
    public = x509.load_pem_x509_certificates(data)[0].public_key()
    if not isinstance(public, RSAPublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        raise ValueError("the private key does not belong to the (first) certificate in the PEM")


def _pem_bytes(pem: str) -> bytes:
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError(f"is longer than {MAX_PEM_LENGTH} characters: not a certificate PEM")
    try:
        return pem.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("a PEM is ASCII text; this one is not") from None
