"""The journal protocol: intent committed before a Graph call, outcome committed after.

On restart a ``pending`` entry means "we may or may not have done this": the caller reads
Graph to find out before doing anything again (invariant 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from app.db.models import JournalEntry
from app.db.repos.journal import JournalRepository
from app.domain.journal import EntryStatus, Operation
from app.graph.errors import GraphError

DONE_STATUSES = frozenset(
    {EntryStatus.applied, EntryStatus.reverted, EntryStatus.drift, EntryStatus.not_needed}
)


def open_intent(
    session: Session,
    *,
    key: str,
    plan_id: str,
    phase_key: str,
    step_index: int,
    operation: Operation,
    target: dict[str, Any],
    prior_state: dict[str, Any] | None,
    desired_state: dict[str, Any] | None,
    fencing_token: int,
    now: datetime,
    reverses_id: int | None = None,
) -> tuple[JournalEntry, bool]:
    """The entry for ``key``, created as pending if new; the flag says it was pending already.

    A failed entry is reopened as pending (a retry); a done one is returned unchanged.
    """
    repo = JournalRepository(session)
    entry = repo.get_by_key(key)
    if entry is None:
        entry = repo.add(
            JournalEntry(
                plan_id=plan_id,
                phase_key=phase_key,
                step_index=step_index,
                operation=operation.value,
                idempotency_key=key,
                target=target,
                prior_state=prior_state,
                desired_state=desired_state,
                status=EntryStatus.pending.value,
                fencing_token=fencing_token,
                reverses_id=reverses_id,
                intent_at=now,
            )
        )
        return entry, False
    if entry.status == EntryStatus.failed.value:
        entry.status = EntryStatus.pending.value
        entry.fencing_token = fencing_token
        entry.error_code = None
        entry.error_message = None
        session.add(entry)
        return entry, False
    return entry, entry.status == EntryStatus.pending.value


def record_outcome(
    session: Session,
    entry_id: int,
    *,
    status: EntryStatus,
    now: datetime,
    outcome: dict[str, Any] | None = None,
    request_id: str | None = None,
    error: GraphError | str | None = None,
) -> JournalEntry:
    entry = session.get(JournalEntry, entry_id)
    assert entry is not None, f"journal entry {entry_id} vanished"
    entry.status = status.value
    entry.completed_at = now
    if outcome is not None:
        entry.outcome = {**(entry.outcome or {}), **outcome}
    if request_id:
        entry.graph_request_id = request_id
    if isinstance(error, GraphError):
        entry.error_code = error.code or type(error).__name__
        entry.error_message = error.message or str(error)
        entry.graph_request_id = entry.graph_request_id or error.request_id
    elif isinstance(error, str):
        entry.error_message = error
    session.add(entry)
    return entry


def mark(session: Session, entry_id: int, status: EntryStatus) -> None:
    entry = session.get(JournalEntry, entry_id)
    assert entry is not None
    entry.status = status.value
    session.add(entry)


@dataclass(frozen=True)
class Intent:
    key: str
    operation: Operation
    target: dict[str, Any]
    prior_state: dict[str, Any] | None
    desired_state: dict[str, Any] | None


@dataclass(frozen=True)
class OpenEntry:
    id: int
    status: str
    was_pending: bool


def open_intents(
    session: Session,
    intents: Sequence[Intent],
    *,
    plan_id: str,
    phase_key: str,
    step_index: int,
    fencing_token: int,
    now: datetime,
) -> dict[str, OpenEntry]:
    """``open_intent`` for many keys in three statements (the conversion hot path)."""
    keys = [intent.key for intent in intents]
    existing = {
        entry.idempotency_key: entry
        for entry in session.exec(
            select(JournalEntry).where(col(JournalEntry.idempotency_key).in_(keys))
        ).all()
    }
    opened: dict[str, OpenEntry] = {}
    reopen = [e for e in existing.values() if e.status == EntryStatus.failed.value]
    if reopen:
        session.execute(
            update(JournalEntry),
            [
                {
                    "id": e.id,
                    "status": EntryStatus.pending.value,
                    "fencing_token": fencing_token,
                    "error_code": None,
                    "error_message": None,
                }
                for e in reopen
            ],
        )
    for key, entry in existing.items():
        assert entry.id is not None
        status = EntryStatus.pending.value if entry in reopen else entry.status
        opened[key] = OpenEntry(entry.id, status, entry.status == EntryStatus.pending.value)
    new = [intent for intent in intents if intent.key not in existing]
    if new:
        rows = session.execute(
            insert(JournalEntry).returning(col(JournalEntry.id), col(JournalEntry.idempotency_key)),
            [
                {
                    "plan_id": plan_id,
                    "phase_key": phase_key,
                    "step_index": step_index,
                    "operation": intent.operation.value,
                    "idempotency_key": intent.key,
                    "target": intent.target,
                    "prior_state": intent.prior_state,
                    "desired_state": intent.desired_state,
                    "status": EntryStatus.pending.value,
                    "fencing_token": fencing_token,
                    "intent_at": now,
                }
                for intent in new
            ],
        ).all()
        for entry_id, key in rows:
            opened[key] = OpenEntry(int(entry_id), EntryStatus.pending.value, False)
    return opened


@dataclass(frozen=True)
class Outcome:
    entry_id: int
    status: EntryStatus
    outcome: dict[str, Any] | None = None
    request_id: str | None = None
    error: GraphError | str | None = None


def record_outcomes(session: Session, outcomes: Sequence[Outcome], *, now: datetime) -> None:
    """``record_outcome`` for many entries in one statement."""
    if not outcomes:
        return
    rows = []
    for result in outcomes:
        row: dict[str, Any] = {
            "id": result.entry_id,
            "status": result.status.value,
            "completed_at": now,
            "outcome": result.outcome,
            "graph_request_id": result.request_id,
            "error_code": None,
            "error_message": None,
        }
        if isinstance(result.error, GraphError):
            row["error_code"] = result.error.code or type(result.error).__name__
            row["error_message"] = result.error.message or str(result.error)
            row["graph_request_id"] = result.request_id or result.error.request_id
        elif isinstance(result.error, str):
            row["error_message"] = result.error
        rows.append(row)
    session.execute(update(JournalEntry), rows)
