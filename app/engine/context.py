"""What the engine needs, passed in rather than global: sessions, Graph, secrets, time, identity."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from app.db.models import Tenant
from app.db.repos.leases import LeaseRepository
from app.db.session import SessionFactory, unit_of_work
from app.domain.clock import Clock
from app.domain.tenant import GraphLimits
from app.graph.client import GraphClient
from app.graph.factory import GraphClientFactory
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tenants import tenant_auth

Sleeper = Callable[[float], Awaitable[None]]


class LeaseLostError(Exception):
    """Another worker took the plan over; this one must stop writing at once."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class EngineContext:
    session_factory: SessionFactory
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
            session_factory=ctx.session_factory,
            graph_factory=ctx.graph_factory,
            secret_box=ctx.secret_box,
            clock=ctx.clock,
            worker_id=worker_id or ctx.settings.worker_id or default_worker_id(),
            lease_ttl=timedelta(seconds=ctx.settings.scheduler.lease_seconds),
            public_url=ctx.settings.public_url,
        )

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


def claim_plan(ctx: EngineContext, plan_id: str) -> Lease | None:
    name = f"plan:{plan_id}"
    with unit_of_work(ctx.session_factory) as session:
        token = LeaseRepository(session).claim(
            name, holder=ctx.worker_id, now=ctx.clock.now(), ttl=ctx.lease_ttl
        )
    return None if token is None else Lease(name, ctx.worker_id, token)


def release(ctx: EngineContext, lease: Lease) -> None:
    with unit_of_work(ctx.session_factory) as session:
        LeaseRepository(session).release(
            lease.name, holder=lease.holder, token=lease.token, now=ctx.clock.now()
        )


@contextmanager
def fenced(ctx: EngineContext, lease: Lease) -> Iterator[Session]:
    """A unit of work that first proves (and renews) our lease; a stale worker writes nothing."""
    with unit_of_work(ctx.session_factory) as session:
        alive = LeaseRepository(session).fence(
            lease.name,
            holder=lease.holder,
            token=lease.token,
            now=ctx.clock.now(),
            ttl=ctx.lease_ttl,
        )
        if not alive:
            raise LeaseLostError(f"lease {lease.name} (token {lease.token}) was taken over")
        yield session
