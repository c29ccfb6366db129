"""Test doubles that stand in for things outside the process (never for the simulator)."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken


class FakeCredential:
    """An azure-identity style async credential that hands out scripted tokens.

    Used instead of contacting login.microsoftonline.com.
    """

    def __init__(
        self,
        *tokens: str,
        lifetime: float = 3600.0,
        error: Exception | None = None,
        wall_clock: Any = time.time,
    ) -> None:
        self.tokens = list(tokens) or ["token-1"]
        self.lifetime = lifetime
        self.error = error
        self.wall_clock = wall_clock
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.closed = False

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append((scopes, tenant_id))
        if self.error is not None:
            raise self.error
        token = self.tokens[min(len(self.calls), len(self.tokens)) - 1]
        return AccessToken(token, int(self.wall_clock() + self.lifetime))

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class FakeEntra:
    """Stands in for Entra's sign-in endpoint behind azure-identity's real credentials.

    ``install`` patches ``get_token`` of the async client-secret and managed-identity
    credentials: a secret in ``refused`` gets ``ClientAuthenticationError`` with that AADSTS
    code (its message echoes the secret, as some of Entra's do); a managed identity gets
    ``CredentialUnavailableError`` unless ``identity_available``, and so does the default chain
    (nothing talks to the machine's identity endpoint or tools); anything else a token the
    simulated tenant accepts.
    """

    def __init__(self) -> None:
        self.refused: dict[str, str] = {}
        self.identity_available = False
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def install(self, monkeypatch: Any) -> FakeEntra:
        from azure.identity.aio import (
            CertificateCredential,
            ClientSecretCredential,
            DefaultAzureCredential,
            ManagedIdentityCredential,
        )

        entra = self

        async def secret_token(
            credential: ClientSecretCredential, *scopes: str, **kwargs: Any
        ) -> AccessToken:
            entra.asked.append(("client_secret", scopes))
            secret = credential._secret  # where the real credential keeps it
            if secret in entra.refused:
                from azure.core.exceptions import ClientAuthenticationError

                raise ClientAuthenticationError(
                    message=f"{entra.refused[secret]}: refused client secret {secret!r}"
                )
            return AccessToken("simulated-tenant", int(time.time()) + 3600)

        async def identity_token(
            credential: ManagedIdentityCredential, *scopes: str, **kwargs: Any
        ) -> AccessToken:
            entra.asked.append(("managed_identity", scopes))
            if not entra.identity_available:
                from azure.identity import CredentialUnavailableError

                raise CredentialUnavailableError(
                    message="ManagedIdentityCredential authentication unavailable, no response "
                    "from the IMDS endpoint."
                )
            return AccessToken("simulated-tenant", int(time.time()) + 3600)

        async def chain_token(credential: Any, *scopes: str, **kwargs: Any) -> AccessToken:
            entra.asked.append(("default", scopes))
            from azure.identity import CredentialUnavailableError

            raise CredentialUnavailableError(message="DefaultAzureCredential failed to retrieve")

        async def certificate_token(credential: Any, *scopes: str, **kwargs: Any) -> AccessToken:
            entra.asked.append(("certificate", scopes))
            return AccessToken("simulated-tenant", int(time.time()) + 3600)

        monkeypatch.setattr(ClientSecretCredential, "get_token", secret_token)
        monkeypatch.setattr(ManagedIdentityCredential, "get_token", identity_token)
        monkeypatch.setattr(DefaultAzureCredential, "get_token", chain_token)
        monkeypatch.setattr(CertificateCredential, "get_token", certificate_token)
        return self
