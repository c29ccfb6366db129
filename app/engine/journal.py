"""The journal protocol: intent committed before a Graph call, outcome committed after.

On restart a ``pending`` entry means "we may or may not have done this": the caller reads
Graph to find out before doing anything again (invariant 5).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

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
