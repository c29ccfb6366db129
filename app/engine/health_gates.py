"""The real :data:`~app.engine.gates.GateEvaluator`: health gates read the monitoring reports.

Before judging, it makes sure the tenant's monitoring data is fresh (collecting now if it is
older than ``max_data_age_seconds``); if it cannot, the phase is held and the reason says why.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from app.domain.health import GateObservation, evaluate_gates
from app.engine.context import EngineContext
from app.engine.gates import GateCheck, GateVerdict
from app.engine.monitoring import ensure_fresh
from app.logging import get_logger
from app.services.monitoring.reports import gate_observation
from app.services.tenants import get_tenant
from app.settings import MonitoringSettings

log = get_logger(__name__)


class MonitoringGates:
    def __init__(self, settings: MonitoringSettings | None = None) -> None:
        self.settings = settings or MonitoringSettings()

    async def __call__(self, ectx: EngineContext, check: GateCheck) -> GateVerdict:
        if not check.gates:
            return GateVerdict(True)

        tenant = await ectx.db.read(lambda session: get_tenant(session, check.tenant_id))
        fresh = await ensure_fresh(ectx, tenant, self.settings)
        if not fresh.ok:
            return GateVerdict(False, (fresh.reason or "monitoring data is unavailable",))

        def observe(session: Session) -> dict[timedelta, GateObservation]:
            observations: dict[timedelta, GateObservation] = {}
            for gate in check.gates:
                if gate.window not in observations:
                    observations[gate.window] = gate_observation(
                        session,
                        tenant_id=check.tenant_id,
                        plan_id=check.plan_id,
                        window=gate.window,
                        now=check.now,
                        settings=self.settings,
                    )
            return observations

        observations = await ectx.db.read(observe)
        results = evaluate_gates(check.gates, [observations[g.window] for g in check.gates])
        failing = tuple(r.detail for r in results if not r.passed)
        log.info(
            "engine.health_gates",
            plan_id=check.plan_id,
            passed=not failing,
            results=[r.detail for r in results],
        )
        if failing:
            return GateVerdict(False, failing)
        return GateVerdict(True, tuple(r.detail for r in results))


monitoring_gates = MonitoringGates()
"""With default thresholds; the app passes one built from its settings."""
