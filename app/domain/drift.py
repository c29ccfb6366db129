"""Drift after rollout: standing access that comes back, and the standing Global Administrators.

The playbook warns that assignments made outside PIM undo the work. Two findings, per plan:

* ``reassigned_after_conversion``: a permanent Active assignment to a target role held by a
  principal whose assignment the plan converted (the conversion removed it, so it came back);
* ``new_standing_assignment``: a permanent Active assignment to a target role that was not in
  the plan's baseline (or, without a baseline, first seen after the plan started).

Only what the collector saw *after* the conversion (or the plan's start) counts: a record last
seen before it is stale, not drift. Break-glass accounts are never drift: they stay permanent
Active Global Administrators by design. Pure: the caller gathers what is standing (as last
collected), what each plan converted and the audit hints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.roles import GLOBAL_ADMINISTRATOR

AssignmentKey = tuple[str, str, str]
"""(principal id, role definition id, directory scope id)."""


class DriftKind(StrEnum):
    reassigned_after_conversion = "reassigned_after_conversion"
    new_standing_assignment = "new_standing_assignment"


class AssignmentSource(StrEnum):
    outside_pim = "outside_pim"
    """Made in Entra directly: the assignment has no PIM schedule start (domain facts)."""
    pim = "pim"
    """A permanent Active assignment made through PIM by an administrator."""


@dataclass(frozen=True)
class StandingAssignment:
    """A permanent (no end) Active assignment of type Assigned, as the collector last saw it."""

    assignment_id: str
    principal_id: str
    role_definition_id: str
    first_seen_at: datetime
    directory_scope_id: str = "/"
    created_outside_pim: bool = True
    principal_name: str | None = None
    principal_type: str | None = None
    last_seen_at: datetime | None = None
    """When the collector last saw it (``first_seen_at`` if not given)."""

    @property
    def key(self) -> AssignmentKey:
        return (self.principal_id, self.role_definition_id, self.directory_scope_id)

    @property
    def seen_last(self) -> datetime:
        return self.last_seen_at or self.first_seen_at


@dataclass(frozen=True)
class Conversion:
    """A work item the plan finished: the principal's Active assignment was removed then."""

    principal_id: str
    role_definition_id: str
    converted_at: datetime
    directory_scope_id: str = "/"

    @property
    def key(self) -> AssignmentKey:
        return (self.principal_id, self.role_definition_id, self.directory_scope_id)


@dataclass(frozen=True)
class PlanScope:
    plan_id: str
    plan_name: str
    started_at: datetime
    target_roles: frozenset[str]
    conversions: tuple[Conversion, ...] = ()
    baseline: frozenset[AssignmentKey] | None = None
    """Permanent Active assignments in the inventory taken when the plan started, if any."""


@dataclass(frozen=True)
class AssignmentAudit:
    """An audit record that added a member to a role permanently (who, and when)."""

    principal_id: str
    role_definition_id: str
    at: datetime
    actor: str | None = None


@dataclass(frozen=True)
class DriftFinding:
    plan_id: str
    plan_name: str
    kind: DriftKind
    source: AssignmentSource
    principal_id: str
    principal_name: str | None
    role_definition_id: str
    directory_scope_id: str
    assignment_id: str
    seen_at: datetime
    """When the collector first saw this assignment."""
    assigned_at: datetime | None
    """When the audit log says it was made, if a matching record was collected."""
    assigned_by: str | None
    converted_at: datetime | None


def _audit_for(
    audits: Mapping[tuple[str, str], Sequence[AssignmentAudit]],
    assignment: StandingAssignment,
    after: datetime,
) -> AssignmentAudit | None:
    candidates = [
        a
        for a in audits.get((assignment.principal_id, assignment.role_definition_id), ())
        if a.at >= after
    ]
    return max(candidates, key=lambda a: a.at) if candidates else None


def index_audits(
    audits: Iterable[AssignmentAudit],
) -> dict[tuple[str, str], list[AssignmentAudit]]:
    indexed: dict[tuple[str, str], list[AssignmentAudit]] = {}
    for audit in audits:
        indexed.setdefault((audit.principal_id, audit.role_definition_id), []).append(audit)
    return indexed


def classify_drift(
    standing: Iterable[StandingAssignment],
    plans: Sequence[PlanScope],
    *,
    break_glass: frozenset[str],
    audits: Iterable[AssignmentAudit] = (),
) -> list[DriftFinding]:
    """Every drift finding, per plan, oldest first."""
    by_audit = index_audits(audits)
    current = list(standing)
    findings: list[DriftFinding] = []
    for plan in plans:
        converted = {c.key: c for c in plan.conversions}
        for assignment in current:
            if assignment.role_definition_id not in plan.target_roles:
                continue
            if assignment.principal_id in break_glass:
                continue
            conversion = converted.get(assignment.key)
            if conversion is not None:
                kind = DriftKind.reassigned_after_conversion
                reference = conversion.converted_at
            elif plan.baseline is not None:
                if assignment.key in plan.baseline:
                    continue
                kind, reference = DriftKind.new_standing_assignment, plan.started_at
            elif assignment.first_seen_at > plan.started_at:
                kind, reference = DriftKind.new_standing_assignment, plan.started_at
            else:
                continue
            if assignment.seen_last < reference:
                # Last seen before the conversion (or the start): the collection is older than
                # the change, so nothing can be said yet; the next collection tells.
                continue
            audit = _audit_for(by_audit, assignment, reference)
            findings.append(
                DriftFinding(
                    plan_id=plan.plan_id,
                    plan_name=plan.plan_name,
                    kind=kind,
                    source=(
                        AssignmentSource.outside_pim
                        if assignment.created_outside_pim
                        else AssignmentSource.pim
                    ),
                    principal_id=assignment.principal_id,
                    principal_name=assignment.principal_name,
                    role_definition_id=assignment.role_definition_id,
                    directory_scope_id=assignment.directory_scope_id,
                    assignment_id=assignment.assignment_id,
                    seen_at=assignment.first_seen_at,
                    assigned_at=audit.at if audit else None,
                    assigned_by=audit.actor if audit else None,
                    converted_at=conversion.converted_at if conversion else None,
                )
            )
    findings.sort(key=lambda f: (f.seen_at, f.plan_id, f.principal_id, f.role_definition_id))
    return findings


@dataclass(frozen=True)
class GlobalAdminCount:
    standing: int
    """Permanent Active Global Administrators, break-glass included."""
    break_glass_configured: int
    break_glass_holding: int
    others: tuple[StandingAssignment, ...]
    healthy: bool
    reading: str


def count_global_admins(
    standing: Iterable[StandingAssignment], *, break_glass: frozenset[str]
) -> GlobalAdminCount:
    """Standing Global Administrators against the break-glass accounts (tenant-wide scope)."""
    holders = {
        a.principal_id: a
        for a in standing
        if a.role_definition_id == GLOBAL_ADMINISTRATOR and a.directory_scope_id == "/"
    }
    holding = sorted(p for p in holders if p in break_glass)
    others = tuple(
        sorted(
            (a for p, a in holders.items() if p not in break_glass),
            key=lambda a: (a.principal_name or "", a.principal_id),
        )
    )
    missing = len(break_glass) - len(holding)
    parts = []
    if others:
        parts.append(
            f"{len(others)} standing Global Administrator(s) besides the break-glass accounts: "
            "make them eligible, or record why they stay."
        )
    if missing:
        parts.append(
            f"{missing} of the {len(break_glass)} break-glass account(s) hold no standing Global "
            "Administrator: emergency access is at risk."
        )
    if not parts:
        parts.append(
            f"Only the {len(holding)} break-glass account(s) hold standing Global Administrator."
        )
    return GlobalAdminCount(
        standing=len(holders),
        break_glass_configured=len(break_glass),
        break_glass_holding=len(holding),
        others=others,
        healthy=not others and not missing,
        reading=" ".join(parts),
    )
