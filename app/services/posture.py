"""Posture reports as they read: one report, the tenant's latest, a plan's before and after."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python
from sqlmodel import Session

from app.db.models import PostureReport
from app.db.repos.plans import PlanRepository
from app.db.repos.posture import PostureRepository
from app.domain.posture import POLICIES
from app.problems import NotFoundError
from app.services.plans import get_plan_row
from app.services.tenants import get_tenant

CSV_COLUMNS = ["policy_id", "policy", "result", "detail", "failing", "plan"]


def report_json(report: PostureReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "tenant_id": report.tenant_id,
        "plan_id": report.plan_id,
        "scope": report.scope,
        "trigger": report.trigger,
        "phase_key": report.phase_key,
        "actor": report.actor,
        "taken_at": to_jsonable_python(report.taken_at),
        "roles": report.roles,
        "roles_not_in_tenant": report.roles_not_in_tenant,
        "mailboxes": report.mailboxes,
        "summary": report.summary,
        "policies": report.rows,
    }


def latest_tenant_report(session: Session, tenant_id: str) -> dict[str, Any]:
    """The tenant's latest report in CISA's scope; 404 when none was taken yet."""
    get_tenant(session, tenant_id)
    report = PostureRepository(session).latest(tenant_id)
    if report is None:
        raise NotFoundError(
            f"tenant {tenant_id} has no posture report yet; POST to take one (a plan's start "
            "takes one too)"
        )
    return report_json(report)


def plan_posture(session: Session, plan_id: str) -> dict[str, Any]:
    """The plan's reports in its own scope: before (at the baseline), after each completed
    phase, after a rollback, and the latest ("now"), with the results side by side."""
    plan = get_plan_row(session, plan_id)
    reports = list(PostureRepository(session).list_for_plan(plan_id))
    phases = PlanRepository(session).phases(plan_id)
    before = next((r for r in reports if r.trigger == "baseline"), None)
    after: dict[str, PostureReport] = {}
    for report in reports:
        if report.trigger == "phase_completed" and report.phase_key is not None:
            after[report.phase_key] = report  # a phase completed again after a retry: latest
    rolled_back = next((r for r in reversed(reports) if r.trigger == "rolled_back"), None)
    now = reports[-1] if reports else None
    return {
        "plan_id": plan.id,
        "tenant_id": plan.tenant_id,
        "before": report_json(before) if before else None,
        "phases": [
            {
                "phase": phase.key,
                "title": phase.title,
                "state": phase.state,
                "report": report_json(after[phase.key]) if phase.key in after else None,
            }
            for phase in phases
        ],
        "rolled_back": report_json(rolled_back) if rolled_back else None,
        "now": report_json(now) if now else None,
        "policies": _comparison(before, [(p.key, after.get(p.key)) for p in phases], now),
    }


def _results(report: PostureReport | None) -> dict[str, str]:
    if report is None:
        return {}
    return {row["policy_id"]: row["result"] for row in report.rows}


def _comparison(
    before: PostureReport | None,
    after: Sequence[tuple[str, PostureReport | None]],
    now: PostureReport | None,
) -> list[dict[str, Any]]:
    was = _results(before)
    per_phase = [(key, _results(report)) for key, report in after]
    latest = _results(now)
    plan_text = {row["policy_id"]: row.get("plan") for row in (now.rows if now else [])}
    return [
        {
            "policy_id": policy_id,
            "policy": summary,
            "before": was.get(policy_id),
            "after": {key: results.get(policy_id) for key, results in per_phase},
            "now": latest.get(policy_id),
            "plan": plan_text.get(policy_id),
        }
        for policy_id, summary in POLICIES.items()
    ]


def posture_csv(report: dict[str, Any]) -> str:
    """One row per policy; failing principals or roles joined by "; "."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report["policies"]:
        failing = "; ".join(f"{item['name']} ({item['detail']})" for item in row["items"])
        writer.writerow(
            [
                row["policy_id"],
                row["policy"],
                row["result"],
                row["detail"],
                failing,
                row.get("plan") or "",
            ]
        )
    return buffer.getvalue()
