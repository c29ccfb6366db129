"""The vocabulary of journaled Graph mutations and their idempotency keys."""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    create_eligibility = "create_eligibility"
    remove_active = "remove_active"
    update_policy_rule = "update_policy_rule"
    create_access_review = "create_access_review"
    send_mail = "send_mail"
    # rollback's own mutations, each pointing at the entry it reverses
    restore_active = "restore_active"
    remove_eligibility = "remove_eligibility"
    restore_policy_rule = "restore_policy_rule"
    delete_access_review = "delete_access_review"


class EntryStatus(StrEnum):
    pending = "pending"  # intent committed, outcome not yet known
    applied = "applied"
    failed = "failed"
    reverted = "reverted"  # rolled back by a later entry
    drift = "drift"  # changed outside the plan since; rollback left it alone
    not_needed = "not_needed"  # rollback found nothing to undo


def item_key(
    plan_id: str, operation: Operation, principal_id: str, role_id: str, scope: str
) -> str:
    """One key per (plan, operation, principal, role, scope): the same item is never done twice."""
    return f"{plan_id}:{operation.value}:{principal_id}:{role_id}:{scope}"


def rule_key(plan_id: str, phase_key: str, step_index: int, role_id: str, rule_id: str) -> str:
    operation = Operation.update_policy_rule.value
    return f"{plan_id}:{phase_key}:{step_index}:{operation}:{role_id}:{rule_id}"


def review_key(plan_id: str, phase_key: str, step_index: int, role_id: str) -> str:
    return f"{plan_id}:{phase_key}:{step_index}:{Operation.create_access_review.value}:{role_id}"


def mail_key(plan_id: str, phase_key: str, principal_id: str) -> str:
    return f"{plan_id}:{phase_key}:{Operation.send_mail.value}:{principal_id}"


def rollback_key(original_key: str, attempt: int = 0) -> str:
    return f"rollback:{attempt}:{original_key}"
