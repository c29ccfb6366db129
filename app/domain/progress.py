"""Conversion progress is derived from work-item states, never stored as a label."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class WorkItemState(StrEnum):
    pending = "pending"
    eligible_created = "eligible_created"  # eligible confirmed, active not yet removed
    done = "done"
    failed = "failed"
    skipped = "skipped"  # cannot be converted (service principal...), reported
    kept_active = "kept_active"  # eligible created, active kept (last active GA/PRA)
    reverted = "reverted"  # rolled back


REMAINING_STATES = frozenset({WorkItemState.pending, WorkItemState.eligible_created})


@dataclass(frozen=True)
class Progress:
    done: int = 0
    failed: int = 0
    remaining: int = 0
    skipped: int = 0
    kept_active: int = 0
    reverted: int = 0

    @property
    def total(self) -> int:
        return (
            self.done
            + self.failed
            + self.remaining
            + self.skipped
            + self.kept_active
            + self.reverted
        )


def progress_from_counts(counts: Mapping[str, int]) -> Progress:
    def count(*states: WorkItemState) -> int:
        return sum(counts.get(state.value, 0) for state in states)

    return Progress(
        done=count(WorkItemState.done),
        failed=count(WorkItemState.failed),
        remaining=count(*REMAINING_STATES),
        skipped=count(WorkItemState.skipped),
        kept_active=count(WorkItemState.kept_active),
        reverted=count(WorkItemState.reverted),
    )
