"""Journaled PATCHes of PIM policy rules, with the rule they replace recorded first."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlmodel import Session

from app.db.models import JournalEntry
from app.db.repos.journal import JournalRepository
from app.domain.journal import EntryStatus, Operation, rule_key
from app.domain.roles import role_name
from app.domain.rules import same_rule
from app.engine.journal import DONE_STATUSES, open_intent, record_outcome
from app.engine.steps.base import StepContext
from app.engine.transient import ENGINE_ATTEMPTS, describe, is_transient
from app.graph.errors import GraphError
from app.graph.models import parse_policy_rule
from app.logging import get_logger

log = get_logger(__name__)


class RuleChangeError(Exception):
    pass


async def apply_rule_changes(
    sc: StepContext,
    *,
    role_id: str,
    policy_id: str,
    current: Mapping[str, dict[str, Any]],
    changes: Mapping[str, dict[str, Any]],
) -> None:
    """PATCH each changed rule, then read it back; raise ``RuleChangeError`` with the reason."""
    await _settle_earlier_attempts(sc, role_id=role_id, policy_id=policy_id, skip=set(changes))
    for rule_id, desired in changes.items():
        intent = partial(
            open_intent,
            key=rule_key(sc.plan_id, sc.phase.key, sc.step_index, role_id, rule_id),
            plan_id=sc.plan_id,
            phase_key=sc.phase.key,
            step_index=sc.step_index,
            operation=Operation.update_policy_rule,
            target={"role_id": role_id, "policy_id": policy_id, "rule_id": rule_id},
            prior_state=dict(current[rule_id]),
            desired_state=dict(desired),
            fencing_token=sc.lease.token,
            now=sc.engine.clock.now(),
        )
        entry, was_pending = await sc.write(intent)
        entry_id = entry.id
        assert entry_id is not None
        if entry.status in DONE_STATUSES:
            continue
        error = await _patch_until_applied(sc, policy_id, rule_id, desired, check_first=was_pending)
        outcome = (
            partial(record_outcome, entry_id=entry_id, status=EntryStatus.applied)
            if error is None
            else partial(record_outcome, entry_id=entry_id, status=EntryStatus.failed, error=error)
        )
        await sc.write(partial(outcome, now=sc.engine.clock.now()))
        if error is not None:
            text = error if isinstance(error, str) else describe(error)
            raise RuleChangeError(f"{role_name(role_id)}: {rule_id}: {text}")


async def _settle_earlier_attempts(
    sc: StepContext, *, role_id: str, policy_id: str, skip: set[str]
) -> None:
    """A change an earlier attempt left failed or pending may have landed after all: if the rule
    now reads as it wanted, the journal says so (and rollback will restore it)."""

    def open_entries(session: Session) -> list[JournalEntry]:
        return [
            e
            for e in JournalRepository(session).list_for_plan(
                sc.plan_id,
                phase_key=sc.phase.key,
                statuses=[EntryStatus.failed.value, EntryStatus.pending.value],
            )
            if e.operation == Operation.update_policy_rule.value
            and e.step_index == sc.step_index
            and e.target.get("role_id") == role_id
            and e.target.get("rule_id") not in skip
        ]

    for entry in await sc.read(open_entries):
        assert entry.id is not None
        if await _rule_matches(sc, policy_id, entry.target["rule_id"], entry.desired_state or {}):
            await sc.write(
                partial(
                    record_outcome,
                    entry_id=entry.id,
                    status=EntryStatus.applied,
                    now=sc.engine.clock.now(),
                    outcome={"verified_later": True},
                )
            )


async def _patch_until_applied(
    sc: StepContext,
    policy_id: str,
    rule_id: str,
    desired: Mapping[str, Any],
    *,
    check_first: bool,
) -> GraphError | str | None:
    """PATCH the rule until it reads back as wanted; None on success, else the reason.

    Sending the whole rule again is safe (the same PATCH twice leaves the same rule), so a
    transient failure is retried after reading back what the rule is now.
    """
    if check_first and await _rule_matches(sc, policy_id, rule_id, desired):
        return None
    last: GraphError | str | None = None
    for attempt in range(ENGINE_ATTEMPTS):
        if attempt:
            await sc.engine.sleeper(min(2.0**attempt, 30.0))
        try:
            await sc.client.update_policy_rule(policy_id, parse_policy_rule(dict(desired)))
        except GraphError as exc:
            if not is_transient(exc):
                return exc
            last = exc
            log.warning("engine.rule.retry", rule_id=rule_id, error=describe(exc))
        try:
            if await _rule_matches(sc, policy_id, rule_id, desired):
                return None
        except GraphError as exc:
            if not is_transient(exc):
                return exc
            last = exc
            continue
        if last is None:
            return "read back after PATCH differs from what was set"
    return last


async def _rule_matches(
    sc: StepContext, policy_id: str, rule_id: str, desired: Mapping[str, Any]
) -> bool:
    live = await sc.client.get_policy_rule(policy_id, rule_id)
    return same_rule(live.to_patch_body(), desired)
