"""Standing access the plan's baseline did not have: what a full rollback leaves behind.

A rollback restores only what the plan journaled. A permanent Active assignment of a target role
that someone made outside the plan after the baseline is left alone (invariant 4) but reported,
so the operator sees every difference from the baseline, not only the ones the journal knows.
"""

from __future__ import annotations

from sqlmodel import Session

from app.db.models import Plan
from app.db.repos.inventory import InventoryRepository
from app.domain.plan import PlanSpec
from app.domain.roles import role_name
from app.engine.context import EngineContext
from app.engine.live import permanent_holdings
from app.graph.client import GraphClient

NEW_STANDING_ACCESS = "permanent Active assigned outside the plan after the baseline; left alone"


def _key(principal_id: str, role_id: str, scope: str) -> tuple[str, str, str]:
    return (principal_id.lower(), role_id.lower(), scope or "/")


async def standing_access_since_baseline(
    ectx: EngineContext, client: GraphClient, plan: Plan, *, limit: int
) -> list[str]:
    """One line per permanent Active assignment of the plan's roles missing from its baseline.

    Raises ``GraphError`` when the tenant can't be read; returns nothing when the plan has no
    baseline (it never started).
    """
    roles = [str(r) for r in PlanSpec.model_validate(plan.spec).role_ids()]
    wanted = {r.lower() for r in roles}

    def load_baseline(session: Session) -> set[tuple[str, str, str]] | None:
        repo = InventoryRepository(session)
        snapshot = repo.latest(plan.tenant_id, plan_id=plan.id)
        if snapshot is None or snapshot.id is None:
            return None
        return {
            _key(item.principal_id, item.role_definition_id, item.directory_scope_id)
            for item in repo.iter_items(snapshot.id)
            if item.role_definition_id.lower() in wanted
        }

    baseline = await ectx.db.read(load_baseline)
    if baseline is None:
        return []
    holdings = await permanent_holdings(client, roles, limit=limit)
    lines = []
    for holding in holdings:
        key = _key(holding.principal_id, holding.role_definition_id, holding.directory_scope_id)
        if key in baseline:
            continue
        who = holding.principal_upn or holding.principal_name or holding.principal_id
        scope = "" if holding.directory_scope_id == "/" else f" at {holding.directory_scope_id}"
        lines.append(
            f"{who} / {role_name(holding.role_definition_id)}{scope}: {NEW_STANDING_ACCESS}"
        )
    return sorted(lines)
