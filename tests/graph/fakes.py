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
