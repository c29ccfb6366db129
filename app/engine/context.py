"""What the engine needs, passed in rather than global: sessions, Graph, secrets, time, identity."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app.db.models import Tenant
from app.db.repos.leases import LeaseRepository
from app.db.session import Database, SessionFactory
from app.domain.clock import Clock
from app.domain.tenant import GraphLimits
from app.graph.client import GraphClient
from app.graph.errors import GraphCredentialError
from app.graph.factory import GraphClientFactory
from app.logging import get_logger
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tenants import credential_problem, usable_auth

Sleeper = Callable[[float], Awaitable[None]]
T = TypeVar("T")

log = get_logger(__name__)


class LeaseLostError(Exception):
    """Another worker took the plan over; this one must stop writing at once."""


class Shutdown:
    """Lets a stopping process end its engine work at an item boundary, not in mid-call.

    Engine runs (ticks, collections) register while they run; ``drain`` asks them to stop at
    their next item boundary (``StepContext.stop_reason``), waits a grace period, then cancels
    what is left. Whatever a cancelled run left half done is what a kill -9 would leave: the
    journal's intent without an outcome, which the next start reconciles.
    """

    def __init__(self) -> None:
        self.requested = False
        self._running: set[asyncio.Task[Any]] = set()

    @contextmanager
    def running(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    async def drain(self, grace_seconds: float) -> None:
        self.requested = True
        running = set(self._running)
        if not running:
            return
        late = running
        if grace_seconds > 0:
            _done, late = await asyncio.wait(running, timeout=grace_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class EngineContext:
    db: Database
    graph_factory: GraphClientFactory
    secret_box: SecretBox
    clock: Clock
    worker_id: str = field(default_factory=default_worker_id)
    lease_ttl: timedelta = timedelta(seconds=60)
    sleeper: Sleeper = asyncio.sleep
    item_attempts: int = 5
    batch_size: int = 20
    public_url: str = "http://127.0.0.1:8000"
    shutdown: Shutdown = field(default_factory=Shutdown)

    @classmethod
    def from_app(cls, ctx: AppContext, *, worker_id: str | None = None) -> EngineContext:
        return cls(
            db=ctx.db,
            graph_factory=ctx.graph_factory,
            secret_box=ctx.secret_box,
            clock=ctx.clock,
            worker_id=worker_id or ctx.settings.worker_id or default_worker_id(),
            lease_ttl=timedelta(seconds=ctx.settings.scheduler.lease_seconds),
            public_url=ctx.settings.public_url,
        )

    @property
    def session_factory(self) -> SessionFactory:
        """Plain sessions, for synchronous callers already off the event loop."""
        return self.db.factory

    async def client_for(self, tenant: Tenant) -> GraphClient:
        """The tenant's Graph client, with a token in hand before any work starts.

        Raises :class:`~app.problems.TenantCredentialError` (424) when the tenant's credential
        cannot get one: nothing is read or written, and the problem says what to fix.
        """
        auth = usable_auth(tenant, self.secret_box)
        try:
            client = await self.graph_factory.get(
                tenant.id,
                tenant.graph_base_url,
                auth,
                GraphLimits.model_validate(tenant.graph_limits),
            )
            await client.ensure_token()
        except GraphCredentialError as exc:
            raise credential_problem(tenant, exc) from None
        return client


@contextmanager
def credential_problems(tenant: Tenant) -> Iterator[None]:
    """Inside, a credential that stops getting tokens midway (say, a secret revoked while a
    long read runs) raises the tenant's 424 problem, like one that failed up front."""
    try:
        yield
    except GraphCredentialError as exc:
        raise credential_problem(tenant, exc) from None


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: int


async def claim_plan(ctx: EngineContext, plan_id: str) -> Lease | None:
    name = f"plan:{plan_id}"
    now = ctx.clock.now()

    def claim(session: Session) -> int | None:
        return LeaseRepository(session).claim(
            name, holder=ctx.worker_id, now=now, ttl=ctx.lease_ttl
        )

    token = await ctx.db.write(claim)
    return None if token is None else Lease(name, ctx.worker_id, token)


async def release(ctx: EngineContext, lease: Lease) -> None:
    now = ctx.clock.now()
    await ctx.db.write(
        lambda session: LeaseRepository(session).release(
            lease.name, holder=lease.holder, token=lease.token, now=now
        )
    )


def _fence_lease(ctx: EngineContext, lease: Lease, now: datetime) -> Callable[[Session], bool]:
    def fence(session: Session) -> bool:
        return LeaseRepository(session).fence(
            lease.name, holder=lease.holder, token=lease.token, now=now, ttl=ctx.lease_ttl
        )

    return fence


async def _renew_until_stopped(ctx: EngineContext, lease: Lease, stop: asyncio.Event) -> None:
    period = ctx.lease_ttl.total_seconds() / 3
    while True:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period)
        if stop.is_set():
            return
        try:
            alive = await ctx.db.write(_fence_lease(ctx, lease, ctx.clock.now()))
        except SQLAlchemyError as exc:
            log.warning("lease.renewal_failed", lease=lease.name, error=type(exc).__name__)
            continue  # the next period tries again; the lease lasts three of them
        if not alive:
            log.warning("lease.lost", lease=lease.name, token=lease.token)
            return


@asynccontextmanager
async def renewed(ctx: EngineContext, lease: Lease) -> AsyncIterator[None]:
    """Keep ``lease`` alive while the body runs, renewing it every third of its TTL.

    For work that holds a lease across long Graph reads with no fenced write between them: the
    lease stays short, so one left by a worker killed mid-work lapses within a TTL instead of
    blocking every other worker for as long as the longest such work could take.
    """
    stop = asyncio.Event()
    renewal = asyncio.create_task(_renew_until_stopped(ctx, lease, stop))
    try:
        yield
    finally:
        # Stopped, not cancelled: a cancelled renewal would leave its write running on its
        # thread, and a renewal committed after the caller's release holds the lease a TTL more.
        stop.set()
        await renewal


def prove_lease(ctx: EngineContext, lease: Lease, session: Session) -> None:
    """Renew our lease inside the caller's transaction; a worker that lost it writes nothing."""
    alive = LeaseRepository(session).fence(
        lease.name,
        holder=lease.holder,
        token=lease.token,
        now=ctx.clock.now(),
        ttl=ctx.lease_ttl,
    )
    if not alive:
        raise LeaseLostError(f"lease {lease.name} (token {lease.token}) was taken over")


async def fenced(ctx: EngineContext, lease: Lease, fn: Callable[[Session], T]) -> T:
    """``fn`` in one write transaction that first proves (and renews) our lease."""

    def proven(session: Session) -> T:
        prove_lease(ctx, lease, session)
        return fn(session)

    return await ctx.db.write(proven)
