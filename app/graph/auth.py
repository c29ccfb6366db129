"""Bearer tokens for Graph from an azure-identity async credential, as an ``httpx.Auth``.

``build_credential`` turns a tenant's auth block into a credential; ``GraphTokenAuth`` caches the
token until shortly before it expires and, on a 401, fetches a fresh one and re-sends once
(httpx ``docs/advanced/authentication.md``, "Custom authentication schemes").

A real credential's token only goes to Microsoft Graph: ``build_auth`` refuses a base URL that is
not one of Graph's clouds (``app.domain.clouds``), asks for that cloud's scope at that cloud's
sign-in authority, and ``GraphTokenAuth`` refuses to put the token on a request to any other host.

A credential that cannot get a token is a configuration problem of the tenant
(:class:`GraphCredentialError`, with what to fix); one that could not reach the sign-in endpoint
is not, and stays a plain :class:`GraphAuthError`. Tokens and secrets never reach logs or
exception messages: failures are reported with the credential's kind, class name and ``AADSTS``
code only.
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
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from app.domain.clouds import (
    GLOBAL,
    allowed_graph_urls,
    graph_endpoint_for,
    graph_host_endpoint,
)
from app.domain.tenant import (
    CertificateAuth,
    ClientSecretAuth,
    DefaultChainAuth,
    ManagedIdentityAuth,
    NoAuth,
    TenantAuth,
)
from app.graph.errors import GraphAuthError, GraphCredentialError
from app.logging import get_logger

log = get_logger(__name__)

GRAPH_SCOPE = GLOBAL.scope
SIMULATED_TENANT_TOKEN = "simulated-tenant"  # a placeholder the simulator accepts, not a secret
_AADSTS = re.compile(r"\bAADSTS\d+\b")
REFRESH_MARGIN_SECONDS = 300.0
"""Refresh this long before expiry so a token never expires between fetch and use."""
FAILURE_HOLD_SECONDS = 30.0
"""After the credential was refused, answer with that refusal for this long without asking the
sign-in endpoint again (the scheduler ticks every few seconds; Entra throttles repeated
failures)."""
FIX_AUTH = "correct the tenant's auth block with PATCH /api/v1/tenants/{id}"
"""The usual fix, as every message names it."""


def graph_scope_for(base_url: str) -> str:
    """The ``.default`` scope of the Graph cloud ``base_url`` points at (public cloud otherwise)."""
    endpoint = graph_host_endpoint(urlparse(base_url).hostname or "")
    return endpoint.scope if endpoint is not None else GRAPH_SCOPE


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


def build_credential(auth: TenantAuth, *, authority: str | None = None) -> AsyncTokenCredential:
    """The azure-identity async credential for a tenant's auth block.

    ``authority`` is the sign-in host of the tenant's cloud (azure-identity's
    ``AzureAuthorityHosts``; the public cloud's when omitted). Nothing is fetched here; the first
    token request happens on the first Graph call. ``NoAuth`` (simulated tenants only;
    ``TenantSpec`` refuses it for non-local URLs) yields a placeholder bearer token.

    Raises ``ValueError`` for material azure-identity refuses (e.g. a key it cannot load).
    """
    cloud: dict[str, Any] = {"authority": authority} if authority is not None else {}
    match auth:
        case ClientSecretAuth():
            return ClientSecretCredential(
                str(auth.tenant_id),
                str(auth.client_id),
                auth.client_secret.get_secret_value(),
                **cloud,
            )
        case CertificateAuth():
            password = auth.certificate_password
            return CertificateCredential(
                str(auth.tenant_id),
                str(auth.client_id),
                certificate_data=auth.certificate_pem.get_secret_value().encode(),
                password=password.get_secret_value().encode() if password is not None else None,
                **cloud,
            )
        case ManagedIdentityAuth():
            return ManagedIdentityCredential(
                client_id=str(auth.client_id) if auth.client_id is not None else None
            )
        case DefaultChainAuth():
            if auth.tenant_id is None:
                return DefaultAzureCredential(**cloud)
            tenant = str(auth.tenant_id)
            return DefaultAzureCredential(
                workload_identity_tenant_id=tenant,
                shared_cache_tenant_id=tenant,
                visual_studio_code_tenant_id=tenant,
                additionally_allowed_tenants=[tenant],
                **cloud,
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

    With ``graph_host`` set (``build_auth`` sets it for every real credential) the token is only
    ever put on an ``https`` request to that host. A refusal by the credential is remembered for
    ``FAILURE_HOLD_SECONDS``.
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
        graph_host: str | None = None,
        credential_kind: str = "unknown",
        cloud: str | None = None,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._tenant_id = tenant_id
        self._wall_clock = wall_clock
        self._graph_host = graph_host
        self.credential_kind = credential_kind
        self.cloud = cloud
        self._lock = asyncio.Lock()
        self._token: AccessToken | None = None
        self._refused: tuple[float, GraphCredentialError] | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("GraphTokenAuth needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_destination(request.url)
        token = await self._current_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = await self._current_token(stale=token)
            log.info("graph.auth.refreshed_after_401", path=request.url.path)
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request

    async def ensure_token(self) -> None:
        """Have a token in hand (the cached one if still good); raise if none can be had."""
        await self._current_token()

    def _check_destination(self, url: httpx.URL) -> None:
        """The second line of defence behind the tenant's validation: Graph's host or nothing."""
        if self._graph_host is None:
            return
        if url.scheme == "https" and url.host.lower() == self._graph_host and url.port is None:
            return
        log.error(
            "graph.auth.token_withheld",
            host=url.host,
            graph_host=self._graph_host,
            credential_kind=self.credential_kind,
        )
        raise GraphCredentialError(
            credential_kind=self.credential_kind,
            cloud=self.cloud,
            reason=f"refusing to send the tenant's Graph token to {url.scheme}://{url.host}: "
            f"only https://{self._graph_host} gets it",
            fix=f"set graph_base_url to the tenant's Microsoft Graph ({allowed_graph_urls()})",
        )

    async def _current_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one if it is near expiry or equal to ``stale``."""
        async with self._lock:
            cached = self._token
            now = self._wall_clock()
            if (
                cached is not None
                and cached.token != stale
                and cached.expires_on - now > REFRESH_MARGIN_SECONDS
            ):
                return cached.token
            refused = self._refused
            if refused is not None and now - refused[0] < FAILURE_HOLD_SECONDS:
                raise refused[1].copy()
            try:
                self._token = await self._fetch()
            except GraphCredentialError as exc:
                self._refused = (now, exc)
                raise
            self._refused = None
            return self._token.token

    async def _fetch(self) -> AccessToken:
        try:
            if self._tenant_id is not None:
                return await self._credential.get_token(self._scope, tenant_id=self._tenant_id)
            return await self._credential.get_token(self._scope)
        except Exception as exc:
            # The credential's own message can echo configuration; keep only safe parts.
            aadsts = _AADSTS.search(str(exc))
            code = aadsts.group(0) if aadsts else None
            log.warning(
                "graph.auth.token_failed",
                credential=type(self._credential).__name__,
                credential_kind=self.credential_kind,
                cloud=self.cloud,
                error_type=type(exc).__name__,
                aadsts=code,
            )
            refusal = token_refusal(exc, code, self.credential_kind)
            if refusal is None:
                raise GraphAuthError(
                    f"could not get a Graph token from {type(self._credential).__name__}: "
                    f"{type(exc).__name__}{f' ({code})' if code else ''}"
                ) from None
            reason, fix = refusal
            raise GraphCredentialError(
                credential_kind=self.credential_kind,
                cloud=self.cloud,
                reason=f"{reason} ({type(exc).__name__}{f' {code}' if code else ''})",
                fix=fix,
            ) from None

    async def aclose(self) -> None:
        """Close the credential (it owns an HTTP session to the token endpoint)."""
        await self._credential.close()


_AADSTS_ADVICE: dict[str, tuple[str, str]] = {
    "AADSTS7000215": (
        "Entra refused the client secret",
        "give the secret's Value (not its Secret ID) from the app registration's "
        f"Certificates & secrets: {FIX_AUTH}",
    ),
    "AADSTS7000222": (
        "the client secret has expired",
        f"create a new client secret on the app registration and {FIX_AUTH}",
    ),
    "AADSTS700016": (
        "Entra knows no application with this client_id in the tenant",
        "check auth.client_id and auth.tenant_id, and that the app is registered (or consented) "
        f"in that tenant and cloud: {FIX_AUTH}",
    ),
    "AADSTS90002": (
        "Entra knows no tenant with this tenant_id in this cloud",
        "check auth.tenant_id (the directory id) and that graph_base_url is the tenant's cloud: "
        + FIX_AUTH,
    ),
    "AADSTS900023": (
        "tenant_id is not a tenant Entra recognises",
        f"give the directory (tenant) id: {FIX_AUTH}",
    ),
    "AADSTS700027": (
        "Entra refused the certificate's signature",
        "upload the certificate (its public part) to the app registration's Certificates & "
        f"secrets, or give a certificate registered there: {FIX_AUTH}",
    ),
    "AADSTS7000112": (
        "the application is disabled in the tenant",
        "enable the app's service principal in the tenant (Enterprise applications)",
    ),
    "AADSTS500011": (
        "Microsoft Graph is not known in the tenant's cloud at this sign-in authority",
        "check that graph_base_url is the tenant's cloud (global, US Gov, China)",
    ),
}


def token_refusal(exc: BaseException, code: str | None, kind: str) -> tuple[str, str] | None:
    """Why the credential refused to issue a token and what to fix, or None when the failure
    is not the tenant's configuration (the sign-in endpoint unreachable or failing).
    """
    if isinstance(exc, CredentialUnavailableError):
        if kind == "managed_identity":
            return (
                "no managed identity is available where the service runs",
                "run the service on Azure with a managed identity assigned to it (for a "
                "user-assigned identity auth.client_id is its client id), or use a client "
                "secret or certificate",
            )
        if kind == "default":
            return (
                "DefaultAzureCredential found no credential where the service runs",
                "configure one of the sources it reads there (AZURE_* environment variables, "
                "workload identity, a managed identity, an Azure CLI sign-in), or use a client "
                "secret or certificate",
            )
        return ("the credential is not available where the service runs", FIX_AUTH)
    if isinstance(exc, ClientAuthenticationError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int) and status >= 500:
            return None
        if code in _AADSTS_ADVICE:
            return _AADSTS_ADVICE[code]
        return (
            "Entra refused to issue a token",
            "check auth.tenant_id, auth.client_id and the secret or certificate against the "
            f"app registration: {FIX_AUTH}",
        )
    if isinstance(exc, (ValueError, TypeError)):
        return ("the credential's configuration is not usable", FIX_AUTH)
    return None


def build_auth(auth: TenantAuth, base_url: str) -> GraphTokenAuth:
    """The ``httpx.Auth`` for a tenant: its credential, its cloud's scope, authority and host.

    Raises :class:`GraphCredentialError` when a real credential's ``base_url`` is not Microsoft
    Graph, or when azure-identity refuses to build the credential.
    """
    if isinstance(auth, NoAuth):
        return GraphTokenAuth(
            StaticTokenCredential(), scope=graph_scope_for(base_url), credential_kind="none"
        )
    endpoint = graph_endpoint_for(base_url)
    if endpoint is None:
        raise GraphCredentialError(
            credential_kind=auth.kind,
            cloud=None,
            reason=f"graph_base_url {urlparse(base_url).hostname or base_url!r} is not Microsoft "
            f"Graph, and a {auth.kind} credential's token goes to Graph only",
            fix=f"set graph_base_url to the tenant's cloud ({allowed_graph_urls()})",
        )
    try:
        credential = build_credential(auth, authority=endpoint.authority_host)
    except (ValueError, TypeError) as exc:
        # azure-identity's messages name the problem but not always safely (key material is
        # parsed by cryptography): keep the type only.
        raise GraphCredentialError(
            credential_kind=auth.kind,
            cloud=endpoint.cloud.value,
            reason=f"azure-identity could not build the {auth.kind} credential "
            f"({type(exc).__name__}): {_BUILD_HINTS.get(auth.kind, 'its settings are refused')}",
            fix=FIX_AUTH,
        ) from None
    return GraphTokenAuth(
        credential,
        scope=endpoint.scope,
        tenant_id=token_tenant_for(auth),
        graph_host=endpoint.graph_host,
        credential_kind=auth.kind,
        cloud=endpoint.cloud.value,
    )


_BUILD_HINTS = {
    "client_secret": "the client secret, tenant id or client id is refused",
    "certificate": "the certificate PEM (an RSA private key and its certificate) or its "
    "password is refused",
}
