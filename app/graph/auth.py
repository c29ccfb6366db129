"""Bearer tokens for Graph from an azure-identity async credential, as an ``httpx.Auth``.

``build_credential`` turns a tenant's auth block into a credential; ``GraphTokenAuth`` caches the
token until shortly before it expires and, on a 401, fetches a fresh one and re-sends once
(httpx ``docs/advanced/authentication.md``, "Custom authentication schemes").

Tokens and secrets never reach logs or exception messages: failures to obtain a token are reported
with the credential's class name and the ``AADSTS`` code only.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, assert_never
from urllib.parse import urlparse

import httpx
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from app.domain.tenant import (
    CertificateAuth,
    ClientSecretAuth,
    DefaultChainAuth,
    ManagedIdentityAuth,
    NoAuth,
    TenantAuth,
)
from app.graph.errors import GraphAuthError
from app.logging import get_logger

log = get_logger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SIMULATED_TENANT_TOKEN = "simulated-tenant"  # a placeholder the simulator accepts, not a secret
_NATIONAL_GRAPH_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)
_AADSTS = re.compile(r"\bAADSTS\d+\b")
REFRESH_MARGIN_SECONDS = 300.0
"""Refresh this long before expiry so a token never expires between fetch and use."""


def graph_scope_for(base_url: str) -> str:
    """The ``.default`` scope of the Graph cloud ``base_url`` points at (public cloud otherwise)."""
    host = (urlparse(base_url).hostname or "").lower()
    return f"https://{host}/.default" if host in _NATIONAL_GRAPH_HOSTS else GRAPH_SCOPE


class StaticTokenCredential:
    """A credential that always returns one fixed token; only for a simulated tenant."""

    def __init__(self, token: str = SIMULATED_TENANT_TOKEN) -> None:
        self._token = token

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        # Far enough in the future that the cache never refreshes it.
        return AccessToken(self._token, int(time.time()) + 365 * 24 * 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def build_credential(auth: TenantAuth) -> AsyncTokenCredential:
    """The azure-identity async credential for a tenant's auth block.

    Nothing is fetched here; the first token request happens on the first Graph call.
    ``NoAuth`` (simulated tenants only; ``TenantSpec`` refuses it for non-local URLs) yields a
    placeholder bearer token.
    """
    match auth:
        case ClientSecretAuth():
            return ClientSecretCredential(
                str(auth.tenant_id), str(auth.client_id), auth.client_secret.get_secret_value()
            )
        case CertificateAuth():
            password = auth.certificate_password
            return CertificateCredential(
                str(auth.tenant_id),
                str(auth.client_id),
                certificate_data=auth.certificate_pem.get_secret_value().encode(),
                password=password.get_secret_value().encode() if password is not None else None,
            )
        case ManagedIdentityAuth():
            return ManagedIdentityCredential(
                client_id=str(auth.client_id) if auth.client_id is not None else None
            )
        case DefaultChainAuth():
            if auth.tenant_id is None:
                return DefaultAzureCredential()
            tenant = str(auth.tenant_id)
            return DefaultAzureCredential(
                workload_identity_tenant_id=tenant,
                shared_cache_tenant_id=tenant,
                visual_studio_code_tenant_id=tenant,
                additionally_allowed_tenants=[tenant],
            )
        case NoAuth():
            return StaticTokenCredential()
        case _:  # pragma: no cover - exhaustive over the TenantAuth union
            assert_never(auth)


def token_tenant_for(auth: TenantAuth) -> str | None:
    """The tenant to ask the credential for, when the auth block names one the chain must use."""
    if isinstance(auth, DefaultChainAuth) and auth.tenant_id is not None:
        return str(auth.tenant_id)
    return None


class GraphTokenAuth(httpx.Auth):
    """``Authorization: Bearer …`` from an async credential, cached under an ``asyncio.Lock``.

    On a 401 the token is fetched again (unless another request already refreshed it) and the
    request re-sent once; a second 401 is returned to the caller as is. azure-identity keeps its
    own cache, so the "fresh" token can be the same one when the 401 was not about expiry.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        scope: str = GRAPH_SCOPE,
        tenant_id: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._tenant_id = tenant_id
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._token: AccessToken | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("GraphTokenAuth needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._current_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = await self._current_token(stale=token)
            log.info("graph.auth.refreshed_after_401", path=request.url.path)
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request

    async def _current_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one if it is near expiry or equal to ``stale``."""
        async with self._lock:
            cached = self._token
            if (
                cached is not None
                and cached.token != stale
                and cached.expires_on - self._wall_clock() > REFRESH_MARGIN_SECONDS
            ):
                return cached.token
            self._token = await self._fetch()
            return self._token.token

    async def _fetch(self) -> AccessToken:
        try:
            if self._tenant_id is not None:
                return await self._credential.get_token(self._scope, tenant_id=self._tenant_id)
            return await self._credential.get_token(self._scope)
        except Exception as exc:
            # The credential's own message can echo configuration; keep only safe parts.
            aadsts = _AADSTS.search(str(exc))
            detail = f" ({aadsts.group(0)})" if aadsts else ""
            log.warning(
                "graph.auth.token_failed",
                credential=type(self._credential).__name__,
                error_type=type(exc).__name__,
                aadsts=aadsts.group(0) if aadsts else None,
            )
            raise GraphAuthError(
                f"could not get a Graph token from {type(self._credential).__name__}: "
                f"{type(exc).__name__}{detail}"
            ) from None

    async def aclose(self) -> None:
        """Close the credential (it owns an HTTP session to the token endpoint)."""
        await self._credential.close()


def build_auth(auth: TenantAuth, base_url: str) -> GraphTokenAuth:
    """The ``httpx.Auth`` for a tenant: its credential, the right Graph scope and tenant."""
    return GraphTokenAuth(
        build_credential(auth), scope=graph_scope_for(base_url), tenant_id=token_tenant_for(auth)
    )
