"""Health gates: signals that must hold before a phase may start automatically.

The tick asks a :data:`GateEvaluator` whenever a due (or gate-held) phase declares health gates.
The real one is :class:`app.engine.health_gates.MonitoringGates`: it reads the monitoring
reports, collecting afresh when the data is stale; until a tenant has monitoring data, a gate
that needs it holds the phase back and says so, rather than letting it through unchecked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from app.domain.plan import HealthGate

if TYPE_CHECKING:
    from app.engine.context import EngineContext


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateCheck:
    """One question to the evaluator: may this plan's next phase start now?"""

    tenant_id: str
    plan_id: str
    gates: Sequence[HealthGate]
    now: datetime


GateEvaluator = Callable[["EngineContext", GateCheck], Awaitable[GateVerdict]]


async def no_gates(ectx: EngineContext, check: GateCheck) -> GateVerdict:
    """Lets phases without health gates through and holds the others (no monitoring at all)."""
    if not check.gates:
        return GateVerdict(True)
    kinds = ", ".join(g.kind.value for g in check.gates)
    return GateVerdict(False, (f"no monitoring data to evaluate the health gates ({kinds})",))
