"""Schedules coming and going: storing, removing, and the lazy clock.

Future starts and scheduled ends are queued as ``PendingEvent``s and applied by :func:`advance`
when a request arrives with a later clock reading, in time order, so the timeline records each
change at the instant it happened (an activation's end, not when somebody next looked).
"""

from __future__ import annotations

import heapq
from datetime import datetime

from app.simulator import audit
from app.simulator.audit import Initiator
from app.simulator.state import PendingEvent, Schedule, SimState, TimelineEntry


def _timeline(state: SimState, schedule: Schedule, change: str, at: datetime, cause: str) -> None:
    state.add_timeline(
        TimelineEntry(
            seq=state.next_seq(),
            at=at,
            principal_id=schedule.principal_id,
            role_definition_id=schedule.role_definition_id,
            directory_scope_id=schedule.directory_scope_id,
            kind=schedule.kind,
            change="added" if change == "added" else "removed",
            cause=cause,
            schedule_id=schedule.id,
        )
    )


def _queue_events(state: SimState, schedule: Schedule, now: datetime) -> None:
    if schedule.start is not None and schedule.start > now:
        state.queue(
            PendingEvent(
                schedule.start,
                state.next_seq(),
                "start",
                schedule.kind,
                schedule.id,
                schedule.version,
            )
        )
    if schedule.end is not None:
        state.queue(
            PendingEvent(
                schedule.end, state.next_seq(), "end", schedule.kind, schedule.id, schedule.version
            )
        )


def started(schedule: Schedule, now: datetime) -> bool:
    return schedule.start is None or schedule.start <= now


def store_schedule(state: SimState, schedule: Schedule, *, now: datetime, cause: str) -> None:
    """Add a schedule; it enters the timeline now if it has started, else when it starts."""
    state.add_schedule(schedule)
    if started(schedule, now):
        _timeline(state, schedule, "added", schedule.start or now, cause)
    _queue_events(state, schedule, now)


def reschedule(
    state: SimState,
    schedule: Schedule,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> None:
    """Change a schedule's window (adminUpdate/adminExtend); earlier queued events go stale."""
    was_started = started(schedule, now)
    schedule.start = start
    schedule.end = end
    schedule.version += 1
    schedule.modified_at = now
    schedule.last_change_at = now
    if was_started and not started(schedule, now):
        _timeline(state, schedule, "removed", now, "update")
    elif not was_started and started(schedule, now):
        _timeline(state, schedule, "added", now, "update")
    _queue_events(state, schedule, now)


def remove_schedule(state: SimState, schedule: Schedule, *, at: datetime, cause: str) -> None:
    state.store(schedule.kind).remove(schedule.id)
    if started(schedule, at):
        _timeline(state, schedule, "removed", at, cause)


def advance(state: SimState, now: datetime) -> None:
    """Apply every queued start and end at or before ``now``, oldest first."""
    while state.pending and state.pending[0].at <= now:
        event = heapq.heappop(state.pending)
        schedule = state.store(event.kind).get(event.schedule_id)
        if schedule is None or schedule.version != event.version:
            continue
        if event.event == "start":
            _on_start(state, schedule, event.at)
        else:
            _on_end(state, schedule, event.at)


def _on_start(state: SimState, schedule: Schedule, at: datetime) -> None:
    _timeline(state, schedule, "added", at, "scheduled_start")
    request = state.requests.get(schedule.created_using or "")
    if request is not None and request.status == "Granted":
        request.status = "Provisioned"
    if schedule.assignment_type == "Activated":
        activity = "Add member to role completed (PIM activation)"
        initiator = Initiator("user", schedule.principal_id)
    else:
        noun = "eligible member" if schedule.kind == "eligible" else "member"
        span = "permanent" if schedule.end is None else "timebound"
        activity = f"Add {noun} to role in PIM completed ({span})"
        initiator = Initiator("system")
    audit.record_role_change(
        state,
        at=at,
        activity=activity,
        operation_type="Add",
        initiator=initiator,
        principal_id=schedule.principal_id,
        role_id=schedule.role_definition_id,
        request_id=schedule.created_using,
        start=schedule.start,
        end=schedule.end,
    )


def _on_end(state: SimState, schedule: Schedule, at: datetime) -> None:
    remove_schedule(state, schedule, at=at, cause="expired")
    if schedule.assignment_type == "Activated":
        activity = "Remove member from role (PIM activation expired)"
    elif schedule.kind == "eligible":
        activity = "Remove eligible member from role in PIM completed (timebound)"
    else:
        activity = "Remove member from role in PIM completed (timebound)"
    audit.record_role_change(
        state,
        at=at,
        activity=activity,
        operation_type="Delete",
        initiator=Initiator("system"),
        principal_id=schedule.principal_id,
        role_id=schedule.role_definition_id,
        request_id=schedule.created_using,
        start=schedule.start,
        end=schedule.end,
    )
