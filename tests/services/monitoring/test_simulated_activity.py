"""The simulator's generated activity (``POST /_sim/activity``) and our report agree exactly."""

from __future__ import annotations

import pytest

from app.services.monitoring.reports import activation_report
from tests.monitoring_rig import MonitoringRig, day


@pytest.mark.parametrize("seed", [3, 8])
async def test_report_matches_what_the_simulator_generated(rig: MonitoringRig, seed: int) -> None:
    rig.at(day(21, 12))
    summary = await rig.sim(
        "POST",
        "/_sim/activity",
        json={
            "activations": 60,
            "days": 20,
            "seed": seed,
            "ticket_share": 0.5,
            "smelly_share": 0.3,
            "max_duration_share": 0.4,
            "early_deactivation_share": 0.2,
            "denial_share": 0.3,
        },
    )
    assert summary["requested"] > 30
    await rig.collect()
    with rig.session_factory() as session:
        report = activation_report(
            session,
            tenant_id=rig.tenant_id,
            period="P28D",
            now=rig.clock.now(),
            settings=rig.settings,
        )
    totals = report.signals.totals
    assert totals.activations == summary["requested"]
    assert {r.role_definition_id: r.totals.activations for r in report.signals.roles} == summary[
        "by_role"
    ]
    assert totals.tickets.without_ticket == summary["requested"] - summary["with_ticket"]
    assert totals.justifications.smelly == summary["smelly_justifications"]
    assert totals.duration.at_max == summary["at_max_duration"]
    assert totals.duration.ended_early == summary["deactivated_early"]
    assert totals.approvals.denied == summary["denied"]
    assert totals.approvals.approved == summary["approved"]
    assert totals.approvals.failed_approvals == summary["denied"]
    assert totals.granted == summary["provisioned"]
    assert sum(w.signals.activations for w in report.signals.weeks) == summary["requested"]
