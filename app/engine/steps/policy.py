"""Journaled PATCHes of PIM policy rules, with the rule they replace recorded first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.journal import EntryStatus, Operation, rule_key
from app.domain.roles import role_name
from app.domain.rules import same_rule
from app.engine.journal import DONE_STATUSES, open_intent, record_outcome
from app.engine.steps.base import StepContext
from app.graph.errors import GraphError, GraphOutcomeUnknownError
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
    for rule_id, desired in changes.items():
        key = rule_key(sc.plan_id, sc.phase.key, sc.step_index, role_id, rule_id)
        with sc.write() as session:
            entry, was_pending = open_intent(
                session,
                key=key,
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
            entry_id, status = entry.id, entry.status
        assert entry_id is not None
        if status in DONE_STATUSES:
            continue
        if was_pending and await _rule_matches(sc, policy_id, rule_id, desired):
            with sc.write() as session:
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.applied,
                    now=sc.engine.clock.now(),
                    outcome={"verified_after_restart": True},
                )
            continue
        try:
            await sc.client.update_policy_rule(policy_id, parse_policy_rule(desired))
        except GraphOutcomeUnknownError:
            log.warning("engine.rule.outcome_unknown", role_id=role_id, rule_id=rule_id)
        except GraphError as exc:
            with sc.write() as session:
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.failed,
                    now=sc.engine.clock.now(),
                    error=exc,
                )
            raise RuleChangeError(
                f"{role_name(role_id)}: Graph refused {rule_id}: {exc.code or exc.status}: "
                f"{exc.message}"
            ) from None
        if not await _rule_matches(sc, policy_id, rule_id, desired):
            with sc.write() as session:
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.failed,
                    now=sc.engine.clock.now(),
                    error="read back after PATCH differs from what was set",
                )
            raise RuleChangeError(
                f"{role_name(role_id)}: {rule_id} reads back differently from what was set"
            )
        with sc.write() as session:
            record_outcome(session, entry_id, status=EntryStatus.applied, now=sc.engine.clock.now())


async def _rule_matches(
    sc: StepContext, policy_id: str, rule_id: str, desired: Mapping[str, Any]
) -> bool:
    live = await sc.client.get_policy_rule(policy_id, rule_id)
    return same_rule(live.to_patch_body(), desired)
