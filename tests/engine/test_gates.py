"""Health gates hold a phase in awaiting_gate with the reason shown, then let it go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from app.db.session import SessionFactory
from app.domain.plan import HealthGate, HealthGateKind
from app.domain.roles import APPLICATION_ADMINISTRATOR, USER_ADMINISTRATOR
from app.engine.gates import GateCheck, no_gates
from app.engine.health_gates import MonitoringGates
from app.engine.tick import tick
from tests.monitoring_rig import MonitoringRig, cast_of, day, monitoring_plan, piloted_rig

GATES: list[dict[str, Any]] = [
    {"kind": "max_failed_approvals", "threshold": 2, "window": "P7D"},
    {"kind": "no_drift"},
]
ALL_ADMINS_DUE = day(28)  # Monday Feb 3, 09:00


@pytest.fixture
async def mon(session_factory: SessionFactory) -> AsyncIterator[MonitoringRig]:
    async with piloted_rig(session_factory, monitoring_plan(health_gates=GATES)) as built:
        yield built


async def deny_three(rig: MonitoringRig) -> None:
    cast = cast_of(rig)
    for offset in range(3):  # Wed Jan 29 .. Fri Jan 31
        rig.at(day(23 + offset))
        request = await rig.activate(
            cast.user_admin, USER_ADMINISTRATOR, hours=1, justification="Resetting MFA for CFO"
        )
        rig.at(day(23 + offset, 9, 5))
        await rig.decide(request["id"], approve=False, approver_id=cast.approver)


class TestHealthGates:
    async def test_failed_approvals_and_drift_hold_the_phase_until_they_clear(
        self, mon: MonitoringRig
    ) -> None:
        await deny_three(mon)
        mon.at(ALL_ADMINS_DUE)
        await tick(mon.ectx)
        state, reason = mon.phase(mon.plan_id, "all-admins")
        assert state == "awaiting_gate"
        assert reason == (
            "health gate: max_failed_approvals: 3 failed approval(s) in the last 7 days "
            "(denied 3, failed 0, expired 0), more than the 2 allowed"
        )

        # Somebody gives a converted pilot member standing access back, outside PIM.
        app_admin = mon.eligible_user(APPLICATION_ADMINISTRATOR)
        mon.at(day(29))
        await mon.assign_outside_pim(app_admin, APPLICATION_ADMINISTRATOR)
        mon.at(day(29, 10))
        await tick(mon.ectx)
        state, reason = mon.phase(mon.plan_id, "all-admins")
        assert state == "awaiting_gate"
        assert reason is not None
        assert "max_failed_approvals: 3 failed approval(s)" in reason
        assert (
            f"no_drift: 1 standing assignment(s) came back after the rollout: "
            f"{mon.upn(app_admin)} / Application Administrator (outside PIM), "
            "more than the 0 allowed"
        ) in reason

        # Two days on, two of the three denials have left the window; the drift has not.
        mon.at(day(31, 10))
        await tick(mon.ectx)
        state, reason = mon.phase(mon.plan_id, "all-admins")
        assert state == "awaiting_gate"
        assert reason is not None
        assert reason.startswith("health gate: no_drift: 1 standing assignment(s)")
        assert "max_failed_approvals" not in reason

        # The assignment is removed again: the gate lets the phase go.
        await mon.remove_active(app_admin, APPLICATION_ADMINISTRATOR)
        mon.at(day(31, 11))
        for _ in range(3):
            await tick(mon.ectx)
        state, _ = mon.phase(mon.plan_id, "all-admins")
        assert state == "completed"

    async def test_gates_pass_on_a_quiet_tenant(self, mon: MonitoringRig) -> None:
        mon.at(ALL_ADMINS_DUE)
        await tick(mon.ectx)
        await tick(mon.ectx)
        state, _ = mon.phase(mon.plan_id, "all-admins")
        assert state == "completed"

    async def test_no_data_holds_and_says_why(self, mon: MonitoringRig) -> None:
        await mon.sim("PUT", "/_sim/permissions", json={"granted": []})
        mon.at(ALL_ADMINS_DUE)
        await tick(mon.ectx)
        state, reason = mon.phase(mon.plan_id, "all-admins")
        assert state == "awaiting_gate"
        assert reason is not None
        assert reason.startswith("health gate: monitoring data could not be collected (audits: ")


class TestEvaluator:
    async def test_fresh_data_is_not_collected_again(self, mon: MonitoringRig) -> None:
        evaluator = MonitoringGates(mon.settings)
        gates = [HealthGate(kind=HealthGateKind.no_drift)]
        check = GateCheck(mon.tenant_id, mon.plan_id, gates, mon.clock.now())
        assert (await evaluator(mon.ectx, check)).passed
        before = (await mon.sim("GET", "/_sim/requests"))["total"]
        mon.at(mon.clock.now() + timedelta(minutes=5))
        assert (await evaluator(mon.ectx, check)).passed
        assert (await mon.sim("GET", "/_sim/requests"))["total"] == before

    async def test_no_declared_gates_pass_without_reading_anything(
        self, mon: MonitoringRig
    ) -> None:
        before = (await mon.sim("GET", "/_sim/requests"))["total"]
        check = GateCheck(mon.tenant_id, mon.plan_id, [], mon.clock.now())
        assert (await MonitoringGates()(mon.ectx, check)).passed
        assert (await mon.sim("GET", "/_sim/requests"))["total"] == before

    async def test_no_gates_holds_declared_gates(self, mon: MonitoringRig) -> None:
        gates = [HealthGate(kind=HealthGateKind.no_drift)]
        verdict = await no_gates(mon.ectx, GateCheck(mon.tenant_id, mon.plan_id, gates, day(0)))
        assert not verdict.passed
        assert verdict.reasons == ("no monitoring data to evaluate the health gates (no_drift)",)
