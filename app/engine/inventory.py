"""Playbook step 1: the baseline of every permanent Active assignment, per role.

Roles are read concurrently and pages streamed into the database in chunks, so memory stays
bounded however large the tenant. Two sources are joined because inventories built only from
PIM's endpoints miss direct assignments in some tenants (domain facts): schedule instances, and
``/roleAssignments`` for anything the former does not show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from sqlmodel import Session

from app.db.models import InventoryItem, InventorySnapshot, Tenant
from app.db.repos.inventory import InventoryRepository
from app.engine.context import EngineContext
from app.engine.live import gather_bounded
from app.graph.client import GraphClient
from app.graph.errors import GraphError
from app.graph.models import DirectoryObject, RoleDefinition
from app.logging import get_logger

log = get_logger(__name__)
CHUNK = 500


class InventoryError(Exception):
    pass


ProgressReport = Callable[[str, int, int], None]
"""(step, done, total): where a long read stands, for the job that runs it."""


async def take_inventory(
    ectx: EngineContext,
    tenant: Tenant,
    *,
    plan_id: str | None = None,
    progress: ProgressReport | None = None,
) -> InventorySnapshot:
    client = await ectx.client_for(tenant)
    taken_at = ectx.clock.now()

    def open_snapshot(session: Session) -> int:
        snapshot = InventoryRepository(session).add_snapshot(
            InventorySnapshot(
                tenant_id=tenant.id, plan_id=plan_id, status="running", taken_at=taken_at
            )
        )
        assert snapshot.id is not None
        return snapshot.id

    snapshot_id = await ectx.db.write(open_snapshot)
    try:
        roles = await client.list_role_definitions()
        finished = 0

        async def one_role(role: RoleDefinition) -> int:
            nonlocal finished
            count = await _inventory_role(ectx, client, snapshot_id, role)
            finished += 1
            if progress is not None:
                progress("inventory: roles read", finished, len(roles))
            return count

        if progress is not None:
            progress("inventory: roles read", 0, len(roles))
        counts = await gather_bounded(roles, one_role, limit=8)
    except GraphError as exc:
        error = f"{exc.code or exc.status}: {exc.message}"
        await ectx.db.write(partial(_finish, snapshot_id, "failed", ectx.clock.now(), error=error))
        raise InventoryError(f"the inventory could not be read: {error}") from exc
    row = await ectx.db.write(
        partial(_finish, snapshot_id, "complete", ectx.clock.now(), items=sum(counts))
    )
    log.info(
        "engine.inventory.taken", tenant_id=tenant.id, snapshot_id=snapshot_id, items=row.item_count
    )
    return row


def _finish(
    snapshot_id: int,
    status: str,
    at: datetime,
    session: Session,
    *,
    items: int | None = None,
    error: str | None = None,
) -> InventorySnapshot:
    row = InventoryRepository(session).get(snapshot_id)
    assert row is not None
    row.status = status
    row.finished_at = at
    if items is not None:
        row.item_count = items
    row.error = error
    session.add(row)
    return row


async def _inventory_role(
    ectx: EngineContext, client: GraphClient, snapshot_id: int, role: RoleDefinition
) -> int:
    name = role.display_name or role.id
    seen: set[tuple[str, str]] = set()
    pending: list[InventoryItem] = []
    total = 0

    async def flush() -> None:
        nonlocal total
        if pending:
            batch = list(pending)
            pending.clear()
            await ectx.db.write(lambda session: InventoryRepository(session).add_items(batch))
            total += len(batch)

    def item(
        principal_id: str,
        principal: DirectoryObject | None,
        scope: str,
        assignment_id: str,
        member_type: str,
        outside: bool,
    ) -> InventoryItem:
        return InventoryItem(
            snapshot_id=snapshot_id,
            role_definition_id=role.id,
            role_name=name,
            principal_id=principal_id,
            principal_type=principal.principal_type if principal else "unknown",
            principal_name=principal.display_name if principal else None,
            principal_upn=principal.user_principal_name if principal else None,
            directory_scope_id=scope,
            assignment_id=assignment_id,
            member_type=member_type,
            created_outside_pim=outside,
        )

    async for instance in client.iter_assignment_schedule_instances(
        role_definition_id=role.id, expand_principal=True
    ):
        scope = instance.directory_scope_id or "/"
        seen.add((instance.principal_id, scope))
        if instance.is_activated or instance.end_date_time is not None:
            continue
        pending.append(
            item(
                instance.principal_id,
                instance.principal,
                scope,
                instance.role_assignment_origin_id or instance.id,
                instance.member_type or "Direct",
                instance.start_date_time is None,
            )
        )
        if len(pending) >= CHUNK:
            await flush()
    async for assignment in client.iter_role_assignments(
        role_definition_id=role.id, expand_principal=True
    ):
        scope = assignment.directory_scope_id or "/"
        if (assignment.principal_id, scope) in seen:
            continue
        seen.add((assignment.principal_id, scope))
        pending.append(
            item(
                assignment.principal_id, assignment.principal, scope, assignment.id, "Direct", True
            )
        )
        if len(pending) >= CHUNK:
            await flush()
    await flush()
    return total


def snapshot_document(
    snapshot: InventorySnapshot, items: Sequence[InventoryItem], *, break_glass: Sequence[str] = ()
) -> dict[str, object]:
    """The export format a rehearsal tenant is built from (``pim-rollout.inventory/v1``)."""
    return {
        "format": "pim-rollout.inventory/v1",
        "tenant_id": snapshot.tenant_id,
        "taken_at": snapshot.taken_at.isoformat(),
        "break_glass_ids": list(break_glass),
        "items": [
            {
                "role_definition_id": i.role_definition_id,
                "role_display_name": i.role_name,
                "principal_id": i.principal_id,
                "principal_type": i.principal_type,
                "principal_display_name": i.principal_name,
                "principal_user_principal_name": i.principal_upn,
                "directory_scope_id": i.directory_scope_id,
                "assignment_id": i.assignment_id,
                "member_type": i.member_type,
                "created_outside_pim": i.created_outside_pim,
            }
            for i in items
        ],
    }
