"""How a baseline snapshot reads over HTTP."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.db.models import InventorySnapshot
from app.db.repos.inventory import InventoryRepository


def inventory_read(
    session: Session, snapshot: InventorySnapshot, *, limit: int, offset: int
) -> dict[str, Any]:
    assert snapshot.id is not None
    repo = InventoryRepository(session)
    rows = repo.page_items(snapshot.id, offset=offset, limit=limit)
    return {
        "id": snapshot.id,
        "tenant_id": snapshot.tenant_id,
        "plan_id": snapshot.plan_id,
        "taken_at": snapshot.taken_at,
        "finished_at": snapshot.finished_at,
        "item_count": snapshot.item_count,
        "by_role": [
            {"role_definition_id": role, "role_name": name, "count": count}
            for role, name, count in repo.role_counts(snapshot.id)
        ],
        "items": [
            {
                "role_definition_id": r.role_definition_id,
                "role_name": r.role_name,
                "principal_id": r.principal_id,
                "principal_type": r.principal_type,
                "principal_name": r.principal_name,
                "principal_upn": r.principal_upn,
                "directory_scope_id": r.directory_scope_id,
                "assignment_id": r.assignment_id,
                "member_type": r.member_type,
                "created_outside_pim": r.created_outside_pim,
            }
            for r in rows
        ],
        "limit": limit,
        "offset": offset,
    }
