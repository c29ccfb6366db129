"""Reading the simulated tenant's state the way the tests compare it."""

from __future__ import annotations

from typing import Any

from app.domain.rules import meaningful

TOUCHED_RULES = (
    "Expiration_EndUser_Assignment",
    "Enablement_EndUser_Assignment",
    "Approval_EndUser_Assignment",
    "Notification_Admin_Admin_Assignment",
    "Notification_Admin_Admin_Eligibility",
    "Notification_Admin_EndUser_Assignment",
)


def permanent_active(state: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (a["principal_id"], a["role_definition_id"], a["directory_scope_id"])
        for a in state["active_assignments"]
        if a["assignment_type"] == "Assigned" and a["end"] is None
    }


def eligible(state: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (a["principal_id"], a["role_definition_id"], a["directory_scope_id"])
        for a in state["eligible_assignments"]
    }


def principal_types(state: dict[str, Any]) -> dict[str, str | None]:
    return {a["principal_id"]: a["principal_type"] for a in state["active_assignments"]}


def rules_of(state: dict[str, Any], role_id: str) -> dict[str, Any]:
    rules = state["policies"][role_id]["rules"]
    by_id = {r["id"]: r for r in rules} if isinstance(rules, list) else dict(rules)
    return {rule_id: meaningful(by_id[rule_id]) for rule_id in TOUCHED_RULES}


def no_lockout(timeline: list[dict[str, Any]], holders: set[tuple[str, str]]) -> list[str]:
    """Replay the timeline; report any instant a converted holder held a role neither way."""
    held: dict[tuple[str, str], set[str]] = {}
    problems: list[str] = []
    for change in timeline:
        key = (change["principal_id"], change["role_definition_id"])
        kinds = held.setdefault(key, set())
        if change["change"] == "added":
            kinds.add(change["kind"])
        else:
            kinds.discard(change["kind"])
            if key in holders and not kinds:
                problems.append(f"{key} held nothing after {change}")
    return problems
