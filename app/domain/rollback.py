"""Rollback as pure decisions: the order to undo journaled changes, and drift classification.

Rollback walks applied entries newest first, except that rule changes which would block
re-creating a permanent Active assignment are restored before anything else (reference §6).
Whatever changed outside the plan since is reported as drift and left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from app.domain.journal import Operation
from app.domain.rules import BLOCKS_ACTIVE_RECREATION, same_rule


class EntryLike(Protocol):
    @property
    def id(self) -> int | None: ...

    @property
    def operation(self) -> str: ...

    @property
    def target(self) -> dict[str, Any]: ...


EntryT = TypeVar("EntryT", bound=EntryLike)

REVERSIBLE = frozenset(
    {
        Operation.create_eligibility,
        Operation.remove_active,
        Operation.update_policy_rule,
        Operation.create_access_review,
    }
)


def rollback_order(entries: Sequence[EntryT]) -> list[EntryT]:
    """Newest first, with rules that block re-creating Active assignments moved to the front."""
    reversible = [e for e in entries if e.operation in REVERSIBLE]
    newest_first = sorted(reversible, key=lambda e: e.id or 0, reverse=True)

    def blocks(entry: EntryT) -> bool:
        return (
            entry.operation == Operation.update_policy_rule
            and entry.target.get("rule_id") in BLOCKS_ACTIVE_RECREATION
        )

    return [e for e in newest_first if blocks(e)] + [e for e in newest_first if not blocks(e)]


class Verdict(StrEnum):
    revert = "revert"
    drift = "drift"
    not_needed = "not_needed"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide_policy_rule(
    *, prior: Mapping[str, Any], desired: Mapping[str, Any], live: Mapping[str, Any] | None
) -> Decision:
    if live is None:
        return Decision(Verdict.drift, "the rule can no longer be read")
    if same_rule(live, prior):
        return Decision(Verdict.not_needed, "the rule already has its earlier value")
    if same_rule(live, desired):
        return Decision(Verdict.revert, "restore the value the plan replaced")
    return Decision(Verdict.drift, "the rule was changed outside the plan since; left as it is")


def decide_remove_active(*, active_now: bool) -> Decision:
    """Undo a removal of an Active assignment: re-create it unless it is already there."""
    if active_now:
        return Decision(Verdict.not_needed, "the Active assignment exists again already")
    return Decision(Verdict.revert, "re-create the permanent Active assignment")


def decide_create_eligibility(
    *, live_schedule_id: str | None, created_schedule_id: str | None
) -> Decision:
    """Undo a created Eligible assignment, but only the one the plan created."""
    if live_schedule_id is None:
        return Decision(Verdict.drift, "the Eligible assignment was removed outside the plan")
    if created_schedule_id is not None and live_schedule_id != created_schedule_id:
        return Decision(
            Verdict.drift,
            "the Eligible assignment was replaced outside the plan since; left as it is",
        )
    return Decision(Verdict.revert, "remove the Eligible assignment the plan created")


def decide_access_review(*, exists: bool) -> Decision:
    if not exists:
        return Decision(Verdict.drift, "the review definition was deleted outside the plan")
    return Decision(Verdict.revert, "delete the review definition the plan created")
