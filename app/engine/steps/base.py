"""What every step handler gets and returns, and the registry that finds a handler by kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from sqlmodel import Session

from app.db.models import Plan, Tenant
from app.domain.machine import PlanState
from app.domain.plan import PhaseSpec, PlanSpec, Step
from app.domain.tenant import AutomationSettings, Binding, CommsSettings, GraphLimits
from app.engine.context import EngineContext, Lease, fenced
from app.graph.client import GraphClient

T = TypeVar("T")


class StepStatus(StrEnum):
    done = "done"
    stopped = "stopped"  # paused, frozen or lease lost: nothing wrong, pick up later
    waiting = "waiting"  # e.g. Graph's 5-minute rule: try again on a later tick
    failed = "failed"


@dataclass(frozen=True)
class StepResult:
    status: StepStatus
    reason: str | None = None

    @classmethod
    def done(cls, reason: str | None = None) -> StepResult:
        return cls(StepStatus.done, reason)

    @classmethod
    def failed(cls, reason: str) -> StepResult:
        return cls(StepStatus.failed, reason)

    @classmethod
    def stopped(cls, reason: str) -> StepResult:
        return cls(StepStatus.stopped, reason)

    @classmethod
    def waiting(cls, reason: str) -> StepResult:
        return cls(StepStatus.waiting, reason)


@dataclass
class StepContext:
    engine: EngineContext
    lease: Lease
    plan_id: str
    plan_name: str
    spec: PlanSpec
    phase: PhaseSpec
    step_index: int
    step: Step
    tenant_id: str
    bindings: Mapping[str, Binding]
    break_glass: frozenset[str]
    comms: CommsSettings
    limits: GraphLimits
    client: GraphClient
    notes: list[str] = field(default_factory=list)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in one write transaction under our lease (on a worker thread)."""
        return await fenced(self.engine, self.lease, fn)

    async def read(self, fn: Callable[[Session], T]) -> T:
        return await self.engine.db.read(fn)

    async def stop_reason(self) -> str | None:
        """Why work must stop at this item boundary (pause, freeze, rollback, shutdown), or None."""
        if self.engine.shutdown.requested:
            return "the service is shutting down"

        def load(session: Session) -> tuple[Plan | None, Tenant | None]:
            return session.get(Plan, self.plan_id), session.get(Tenant, self.tenant_id)

        plan, tenant = await self.read(load)
        if plan is None or plan.state != PlanState.running.value:
            return f"the plan is {plan.state if plan else 'gone'}"
        if tenant is not None and AutomationSettings.model_validate(tenant.automation).frozen:
            return "the tenant is frozen"
        return None


class StepHandler(Protocol):
    async def run(self, sc: StepContext) -> StepResult: ...


_REGISTRY: dict[str, StepHandler] = {}


def register(kind: str, handler: StepHandler) -> None:
    _REGISTRY[kind] = handler


def handler_for(kind: str) -> StepHandler:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LookupError(f"no handler is registered for step kind {kind!r}") from None


def registered_kinds() -> frozenset[str]:
    return frozenset(_REGISTRY)
