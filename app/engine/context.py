"""What the engine needs, passed in rather than global: sessions, Graph, secrets, time, identity."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlmodel import Session

from app.db.models import Tenant
from app.db.repos.leases import LeaseRepository
from app.db.session import Database, SessionFactory
from app.domain.clock import Clock
from app.domain.tenant import GraphLimits
from app.graph.client import GraphClient
from app.graph.factory import GraphClientFactory
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tenants import tenant_auth

Sleeper = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class LeaseLostError(Exception):
    """Another worker took the plan over; this one must stop writing at once."""


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
        return await self.graph_factory.get(
            tenant.id,
            tenant.graph_base_url,
            tenant_auth(tenant, self.secret_box),
            GraphLimits.model_validate(tenant.graph_limits),
        )


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
