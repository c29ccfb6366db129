"""Invariant 3 against real membership: an approver never holds the role they approve."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from app.domain.roles import GLOBAL_ADMINISTRATOR, role_name


@dataclass(frozen=True)
class TrustProblem:
    role_id: str
    message: str


def approver_problems(
    *,
    role_id: str,
    approvers: Set[str],
    min_approvers: int,
    holders: Set[str],
    names: Mapping[str, str] | None = None,
) -> list[TrustProblem]:
    """``holders``: everyone who holds or will hold the role, active or eligible."""
    problems = []
    label = role_name(role_id)
    overlap = approvers & holders
    if overlap:
        who = ", ".join(sorted((names or {}).get(p, p) for p in overlap))
        problems.append(
            TrustProblem(
                role_id,
                f"circular trust: {who} would approve {label} but can activate it"
                + (
                    " (Global Administrator approvers must be a different identity)"
                    if role_id == GLOBAL_ADMINISTRATOR
                    else ""
                ),
            )
        )
    if len(approvers) < min_approvers:
        problems.append(
            TrustProblem(
                role_id,
                f"{label} needs at least {min_approvers} approvers; the approver set resolves "
                f"to {len(approvers)}",
            )
        )
    return problems
