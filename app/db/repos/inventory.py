from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, SQLModel, col, select

from app.db.models import InventoryItem, InventorySnapshot

_ITEM_TABLE = SQLModel.metadata.tables[InventoryItem.__tablename__]


class InventoryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_snapshot(self, snapshot: InventorySnapshot) -> InventorySnapshot:
        self.session.add(snapshot)
        self.session.flush()
        return snapshot

    def add_items(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert many items at once (one executemany, no ORM objects): each row maps every
        column of :class:`InventoryItem` but ``id`` to its value."""
        if rows:
            self.session.execute(insert(_ITEM_TABLE), list(rows))

    def get(self, snapshot_id: int) -> InventorySnapshot | None:
        return self.session.get(InventorySnapshot, snapshot_id)

    def latest(self, tenant_id: str, *, plan_id: str | None = None) -> InventorySnapshot | None:
        statement = select(InventorySnapshot).where(
            InventorySnapshot.tenant_id == tenant_id, InventorySnapshot.status == "complete"
        )
        if plan_id is not None:
            statement = statement.where(InventorySnapshot.plan_id == plan_id)
        statement = statement.order_by(col(InventorySnapshot.id).desc()).limit(1)
        return self.session.exec(statement).first()

    def iter_items(self, snapshot_id: int, *, page: int = 1000) -> Iterator[InventoryItem]:
        """Stream a snapshot's items in id order without loading them all."""
        last = 0
        while True:
            statement = (
                select(InventoryItem)
                .where(InventoryItem.snapshot_id == snapshot_id, col(InventoryItem.id) > last)
                .order_by(col(InventoryItem.id))
                .limit(page)
            )
            rows = self.session.exec(statement).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id or last

    def role_counts(self, snapshot_id: int) -> list[tuple[str, str, int]]:
        """(role id, role name, items) for the snapshot, the largest first."""
        statement = (
            select(
                InventoryItem.role_definition_id, func.max(InventoryItem.role_name), func.count()
            )
            .where(InventoryItem.snapshot_id == snapshot_id)
            .group_by(col(InventoryItem.role_definition_id))
        )
        rows = [(role, str(name), int(count)) for role, name, count in self.session.exec(statement)]
        return sorted(rows, key=lambda row: (-row[2], row[1]))

    def page_items(self, snapshot_id: int, *, offset: int, limit: int) -> Sequence[InventoryItem]:
        statement = (
            select(InventoryItem)
            .where(InventoryItem.snapshot_id == snapshot_id)
            .order_by(
                col(InventoryItem.role_name),
                col(InventoryItem.principal_name),
                col(InventoryItem.id),
            )
            .offset(offset)
            .limit(limit)
        )
        return self.session.exec(statement).all()
