"""Health gates: signals that must hold before a phase may start automatically.

Gates read the monitoring reports; until a tenant has monitoring data, a gate that needs it
holds the phase back and says so, rather than letting it through unchecked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from app.domain.plan import HealthGate


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: tuple[str, ...] = ()


GateEvaluator = Callable[[Session, str, Sequence[HealthGate], datetime], Awaitable[GateVerdict]]


async def no_gates(
    session: Session, tenant_id: str, gates: Sequence[HealthGate], now: datetime
) -> GateVerdict:
    if not gates:
        return GateVerdict(True)
    kinds = ", ".join(g.kind.value for g in gates)
    return GateVerdict(False, (f"no monitoring data to evaluate the health gates ({kinds})",))
