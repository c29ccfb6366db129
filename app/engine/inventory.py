"""Playbook step 1: the baseline of every permanent Active assignment, per role.

Roles are read concurrently and pages streamed into the database in chunks, so memory stays
bounded however large the tenant. Two sources are joined because inventories built only from
PIM's endpoints miss direct assignments in some tenants (domain facts): schedule instances, and
``/roleAssignments`` for anything the former does not show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel import Session

from app.db.models import InventoryItem, InventorySnapshot, Tenant
from app.db.repos.inventory import InventoryRepository
from app.engine.context import EngineContext
from app.engine.live import gather_bounded
from app.graph.client import LARGE_PAGE, GraphClient
from app.graph.errors import GraphCredentialError, GraphError
from app.graph.models import DirectoryObject, RoleDefinition
from app.logging import get_logger
from app.services.tenants import credential_problem

log = get_logger(__name__)
ROLES_AT_ONCE = 6
"""Roles read at once, each with its two sources: twelve streams keep the connections busy
while bounding the pages held in memory (a page of 999 instances is a few MB once parsed)."""
CHUNK = 1000
"""Items per insert: each chunk is one short unit of work, so API readers are never held up."""


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
        counts = await gather_bounded(roles, one_role, limit=ROLES_AT_ONCE)
    except GraphError as exc:
        error = f"{exc.code or exc.status}: {exc.message}"
        await ectx.db.write(partial(_finish, snapshot_id, "failed", ectx.clock.now(), error=error))
        if isinstance(exc, GraphCredentialError):
            raise credential_problem(tenant, exc) from None
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


class _ItemWriter:
    """Rows of one role, inserted ``CHUNK`` at a time, each chunk its own short unit of work."""

    def __init__(self, ectx: EngineContext) -> None:
        self._db = ectx.db
        self._pending: list[dict[str, Any]] = []
        self.total = 0

    async def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= CHUNK:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        await self._db.write(lambda session: InventoryRepository(session).add_items(rows))
        self.total += len(rows)


async def _inventory_role(
    ectx: EngineContext, client: GraphClient, snapshot_id: int, role: RoleDefinition
) -> int:
    """The role's items: its schedule instances, then what ``/roleAssignments`` adds.

    Both sources are read at once; an assignment no instance has shown yet is kept aside (its
    id) until the instances are all read, and written only if none showed its principal and
    scope.
    """
    name = role.display_name or role.id
    seen: set[tuple[str, str]] = set()
    direct: dict[tuple[str, str], str] = {}
    writer = _ItemWriter(ectx)

    def row(
        principal_id: str,
        principal: DirectoryObject | None,
        scope: str,
        assignment_id: str,
        member_type: str,
        outside: bool,
    ) -> dict[str, Any]:
        return {
            "snapshot_id": snapshot_id,
            "role_definition_id": role.id,
            "role_name": name,
            "principal_id": principal_id,
            "principal_type": principal.principal_type if principal else "unknown",
            "principal_name": principal.display_name if principal else None,
            "principal_upn": principal.user_principal_name if principal else None,
            "directory_scope_id": scope,
            "assignment_id": assignment_id,
            "member_type": member_type,
            "created_outside_pim": outside,
        }

    async def instances() -> None:
        async for instance in client.iter_assignment_schedule_instances(
            role_definition_id=role.id, expand_principal=True, top=LARGE_PAGE
        ):
            scope = instance.directory_scope_id or "/"
            seen.add((instance.principal_id, scope))
            if instance.is_activated or instance.end_date_time is not None:
                continue
            await writer.add(
                row(
                    instance.principal_id,
                    instance.principal,
                    scope,
                    instance.role_assignment_origin_id or instance.id,
                    instance.member_type or "Direct",
                    instance.start_date_time is None,
                )
            )

    async def assignments() -> None:
        # Without the principal: almost every one is an instance too. The few that are not
        # have their principals looked up afterwards.
        async for assignment in client.iter_role_assignments(
            role_definition_id=role.id, top=LARGE_PAGE
        ):
            key = (assignment.principal_id, assignment.directory_scope_id or "/")
            if key not in seen:
                direct.setdefault(key, assignment.id)

    reads = [asyncio.ensure_future(instances()), asyncio.ensure_future(assignments())]
    try:
        await asyncio.gather(*reads)
    finally:
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
    missing = {key: assignment_id for key, assignment_id in direct.items() if key not in seen}
    direct.clear()
    if missing:
        principals = {
            found.id: found
            for found in await client.get_directory_objects(
                sorted({principal_id for principal_id, _ in missing})
            )
        }
        for (principal_id, scope), assignment_id in missing.items():
            principal = principals.get(principal_id)
            await writer.add(row(principal_id, principal, scope, assignment_id, "Direct", True))
    await writer.flush()
    return writer.total


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
