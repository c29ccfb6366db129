"""One long-lived :class:`GraphClient` per tenant, rebuilt only when its configuration changes.

httpx recommends reusing a client (connection pooling, and here also the token cache, the
pacers and the throttle gates, which only work if every worker of a tenant shares them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import anyio.to_thread
import httpx

from app.domain.tenant import GraphLimits, TenantAuth
from app.graph.auth import GraphTokenAuth, build_auth
from app.graph.client import GraphClient
from app.logging import get_logger
from app.settings import GraphSettings

log = get_logger(__name__)

TransportFor = Callable[[str], httpx.AsyncBaseTransport | None]
AuthBuilder = Callable[[TenantAuth, str], GraphTokenAuth]


@dataclass
class _Entry:
    base_url: str
    auth_config: TenantAuth
    limits: GraphLimits
    auth: GraphTokenAuth
    client: GraphClient

    def matches(self, base_url: str, auth: TenantAuth, limits: GraphLimits) -> bool:
        # Frozen pydantic models compare by value, secrets included (SecretStr compares values),
        # so a rotated client secret rebuilds the client.
        return self.base_url == base_url and self.auth_config == auth and self.limits == limits


class GraphClientFactory:
    """Hands out the tenant's client, keyed by ``tenant_key`` (the tenant id).

    ``transport_for(base_url)`` is the seam for in-process tenants: it returns e.g.
    ``httpx.ASGITransport(app=simulator)`` for a simulated tenant's URL, or ``None`` for the
    network. ``auth_builder`` exists for tests that must not contact login.microsoftonline.com;
    ``sleeper`` and ``clock`` (monotonic seconds) for tests that run the clients' pacing and
    retry waits on a clock of their own.
    """

    def __init__(
        self,
        settings: GraphSettings,
        *,
        transport_for: TransportFor | None = None,
        auth_builder: AuthBuilder = build_auth,
        sleeper: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._transport_for = transport_for
        self._auth_builder = auth_builder
        self._sleeper = sleeper
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def get(
        self, tenant_key: str, base_url: str, auth: TenantAuth, limits: GraphLimits
    ) -> GraphClient:
        """The tenant's client; reused while ``base_url``/``auth``/``limits`` are unchanged."""
        async with self._lock:
            entry = self._entries.get(tenant_key)
            if entry is not None and entry.matches(base_url, auth, limits):
                return entry.client
            # A credential may read a certificate file, and an HTTP client loads the CA bundle
            # into an SSL context (tens of milliseconds): built on a thread, not on the loop.
            token_auth, client = await anyio.to_thread.run_sync(
                partial(self._build, base_url, auth, limits)
            )
            self._entries[tenant_key] = _Entry(base_url, auth, limits, token_auth, client)
            if entry is not None:
                log.info("graph.client.rebuilt", tenant_key=tenant_key)
                # Requests already running on the old client finish before it closes.
                task = asyncio.create_task(_close(entry))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            return client

    def _build(
        self, base_url: str, auth: TenantAuth, limits: GraphLimits
    ) -> tuple[GraphTokenAuth, GraphClient]:
        token_auth = self._auth_builder(auth, base_url)
        transport = self._transport_for(base_url) if self._transport_for else None
        client = GraphClient(
            base_url,
            auth=token_auth,
            transport=transport,
            settings=self._settings,
            limits=limits,
            sleeper=self._sleeper,
            clock=self._clock,
        )
        return token_auth, client

    @asynccontextmanager
    async def one_off(
        self, base_url: str, auth: TenantAuth, limits: GraphLimits
    ) -> AsyncIterator[GraphClient]:
        """A client with a credential of its own, closed on exit: for trying the credential
        afresh, with nothing the tenant's shared client has cached (token or refusal)."""
        token_auth, client = await anyio.to_thread.run_sync(
            partial(self._build, base_url, auth, limits)
        )
        try:
            yield client
        finally:
            await _close(_Entry(base_url, auth, limits, token_auth, client))

    async def aclose_all(self) -> None:
        """Close every client and credential (app shutdown)."""
        async with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        await asyncio.gather(*(_close(entry) for entry in entries), *self._retiring)


async def _close(entry: _Entry) -> None:
    try:
        await entry.client.aclose()
    finally:
        await entry.auth.aclose()
