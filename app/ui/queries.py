"""Paged reads the pages need and the services do not offer yet (journal, inventory)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from app.db.models import InventoryItem, InventorySnapshot, JournalEntry
from app.db.repos.inventory import InventoryRepository
from app.db.repos.journal import JournalRepository
from app.domain.roles import role_name

PER_PAGE = 50


@dataclass(frozen=True)
class Pager:
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def previous(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None

    @property
    def first_shown(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        return min(self.offset + self.per_page, self.total)


def pager(page: int, total: int, per_page: int = PER_PAGE) -> Pager:
    pages = max(1, math.ceil(total / per_page))
    return Pager(min(max(page, 1), pages), per_page, total)


@dataclass(frozen=True)
class RoleCount:
    role_definition_id: str
    role_name: str
    count: int


@dataclass(frozen=True)
class InventoryPage:
    snapshot: InventorySnapshot
    by_role: list[RoleCount]
    items: Sequence[InventoryItem]
    pager: Pager


def latest_inventory(
    session: Session, tenant_id: str, *, plan_id: str | None = None, page: int = 1
) -> InventoryPage | None:
    """The newest complete snapshot (the plan's baseline when ``plan_id`` is given), paged."""
    snapshot = InventoryRepository(session).latest(tenant_id, plan_id=plan_id)
    if snapshot is None or snapshot.id is None:
        return None
    repo = InventoryRepository(session)
    by_role = [
        RoleCount(role, name or role_name(role), count)
        for role, name, count in repo.role_counts(snapshot.id)
    ]
    paging = pager(page, snapshot.item_count or sum(r.count for r in by_role))
    items = repo.page_items(snapshot.id, offset=paging.offset, limit=paging.per_page)
    return InventoryPage(snapshot, by_role, items, paging)


@dataclass(frozen=True)
class JournalPage:
    entries: Sequence[JournalEntry]
    pager: Pager
    phase: str | None


def journal_page(
    session: Session, plan_id: str, *, phase: str | None = None, page: int = 1
) -> JournalPage:
    """The plan's Graph mutations, newest first."""
    repo = JournalRepository(session)
    paging = pager(page, repo.count_for_plan(plan_id, phase_key=phase or None))
    entries = repo.list_for_plan(
        plan_id,
        phase_key=phase or None,
        newest_first=True,
        limit=paging.per_page,
        offset=paging.offset,
    )
    return JournalPage(entries, paging, phase or None)
