"""Realistic activation history, generated through the same engine as real requests.

``POST /_sim/activity`` picks users who are eligible now and replays weeks of their activations
in time order: each ``selfActivate`` (and approval decision, and early ``selfDeactivate``) runs
through :class:`~app.simulator.pim.RequestEngine` with the clock set to when it happened, so
requests, audit records and the timeline agree with each other. Activations are placed after the
eligibility started and never overlap for the same principal and role.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.simulator import audit, lifecycle, policies
from app.simulator.audit import Initiator
from app.simulator.builders import add_outside_pim_assignment
from app.simulator.catalog import HIGH_IMPACT_ROLES
from app.simulator.errors import GraphError
from app.simulator.pim import Caller, RequestEngine
from app.simulator.state import Schedule, SimState, User
from app.simulator.timefmt import format_datetime, format_duration

GOOD_REASONS = (
    "Investigating incident {ticket} affecting sign-ins",
    "Monthly access clean-up for departed staff",
    "Updating the Conditional Access policy for contractors",
    "Rotating client secrets of the HR connector",
    "Resetting MFA registration for a locked-out executive",
    "Onboarding the new regional office users",
    "Reviewing mailbox permissions requested by Legal",
    "Renewing the expiring SAML certificate of the payroll app",
)
SMELLY_REASONS = ("doing my job", "fix", "admin work", "needed", "work", "asdf", "..")


class ActivityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    activations: int = Field(default=50, ge=0, le=100_000)
    days: float = Field(default=30, gt=0, le=366)
    seed: int = 1
    outside_pim_assignments: int = Field(default=0, ge=0, le=10_000)
    ticket_share: float = Field(default=0.4, ge=0, le=1)
    smelly_share: float = Field(default=0.2, ge=0, le=1)
    max_duration_share: float = Field(default=0.3, ge=0, le=1)
    early_deactivation_share: float = Field(default=0.15, ge=0, le=1)
    denial_share: float = Field(default=0.2, ge=0, le=1, description="of approval-gated requests")
    principal_ids: list[str] | None = None
    settle_minutes: float = Field(
        default=10,
        ge=0,
        le=1440,
        description=(
            "no activation starts later than this long ago; 0 lets a demo whose conversions are "
            "minutes old show activations that are still running"
        ),
    )


@dataclass
class _Plan:
    eligibility: Schedule
    start: datetime
    duration: timedelta
    justification: str
    smelly: bool
    ticket: str | None
    approval: bool
    approver: str | None = None
    approve: bool = True
    decision_at: datetime | None = None
    deactivate_at: datetime | None = None


@dataclass
class Summary:
    requested: int = 0
    provisioned: int = 0
    approved: int = 0
    denied: int = 0
    deactivated_early: int = 0
    with_ticket: int = 0
    smelly_justifications: int = 0
    at_max_duration: int = 0
    skipped: int = 0
    still_active: int = 0
    outside_pim_assignments: int = 0
    by_role: Counter[str] = field(default_factory=Counter)
    request_ids: list[str] = field(default_factory=list)

    def as_json(self, start: datetime, end: datetime) -> dict[str, Any]:
        return {
            "window_start": format_datetime(start),
            "window_end": format_datetime(end),
            "requested": self.requested,
            "provisioned": self.provisioned,
            "approved": self.approved,
            "denied": self.denied,
            "deactivated_early": self.deactivated_early,
            "with_ticket": self.with_ticket,
            "smelly_justifications": self.smelly_justifications,
            "at_max_duration": self.at_max_duration,
            "skipped": self.skipped,
            "still_active": self.still_active,
            "outside_pim_assignments": self.outside_pim_assignments,
            "by_role": dict(self.by_role),
            "request_ids": self.request_ids,
        }


class ActivityGenerator:
    def __init__(self, state: SimState, engine: RequestEngine, now: datetime) -> None:
        self.state = state
        self.engine = engine
        self.now = now
        self.busy: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}

    def _candidates(self, wanted: list[str] | None) -> list[Schedule]:
        result = []
        for schedule in self.state.eligibles:
            if not isinstance(self.state.principal(schedule.principal_id), User):
                continue
            if wanted is not None and schedule.principal_id not in wanted:
                continue
            if not schedule.effective(self.now) or self.state.actives.find(*schedule.key):
                continue
            result.append(schedule)
        return result

    def _free(self, key: tuple[str, str], start: datetime, end: datetime) -> bool:
        return all(end <= s or start >= e for s, e in self.busy.get(key, []))

    def _plan(
        self, rng: random.Random, options: ActivityRequest, candidates: list[Schedule]
    ) -> _Plan | None:
        window_start = self.now - timedelta(days=options.days)
        eligibility = rng.choice(candidates)
        policy = self.state.policy_for_role(eligibility.role_definition_id)
        _, maximum = policies.expiration(policy, "Expiration_EndUser_Assignment")
        maximum = maximum or timedelta(hours=8)
        rules = policies.enabled_rules(policy, "Enablement_EndUser_Assignment")
        approval = policies.approval_required(policy)
        at_max = rng.random() < options.max_duration_share
        for _ in range(20):
            if at_max:
                duration = maximum
            else:
                quarters = max(1, int(maximum / timedelta(minutes=15)))
                duration = timedelta(minutes=15 * rng.randint(1, quarters))
            earliest = max(window_start, eligibility.start or eligibility.assigned_at)
            latest = self.now - timedelta(minutes=options.settle_minutes)
            if latest <= earliest:
                return None
            start = earliest + (latest - earliest) * rng.random()
            start = start.replace(microsecond=0)
            delay = timedelta(minutes=rng.randint(5, 60)) if approval else timedelta(0)
            begins = start + delay
            if begins >= self.now:
                continue
            key = (eligibility.principal_id, eligibility.role_definition_id)
            if not self._free(key, start, begins + duration):
                continue
            self.busy.setdefault(key, []).append((start, begins + duration))
            smelly = rng.random() < options.smelly_share
            ticket_number = f"INC{rng.randint(100000, 999999)}"
            wants_ticket = "Ticketing" in rules or rng.random() < options.ticket_share
            reason = rng.choice(SMELLY_REASONS) if smelly else rng.choice(GOOD_REASONS)
            plan = _Plan(
                eligibility=eligibility,
                start=start,
                duration=duration,
                justification=reason.format(ticket=ticket_number),
                smelly=smelly,
                ticket=ticket_number if wants_ticket else None,
                approval=approval,
            )
            if approval:
                approvers = policies.primary_approver_ids(self.state, policy) or set()
                approvers.discard(eligibility.principal_id)
                plan.approver = rng.choice(sorted(approvers)) if approvers else None
                plan.approve = rng.random() >= options.denial_share
                plan.decision_at = begins
            early = (
                duration > timedelta(minutes=20) and rng.random() < options.early_deactivation_share
            )
            if early and (not approval or plan.approve):
                offset = timedelta(
                    minutes=rng.randint(10, max(10, int(duration.total_seconds() // 60) - 5))
                )
                if begins + offset < self.now:
                    plan.deactivate_at = begins + offset
            return plan
        return None

    def run(self, options: ActivityRequest) -> dict[str, Any]:
        rng = random.Random(f"activity:{options.seed}")
        summary = Summary()
        window_start = self.now - timedelta(days=options.days)
        candidates = self._candidates(options.principal_ids)
        if options.activations and not candidates:
            raise GraphError(
                409,
                "NoEligibleAssignments",
                "No user holds an eligible assignment to activate (without a standing active "
                "one); make principals eligible first, e.g. by running a rollout phase.",
            )
        events: list[tuple[datetime, int, str, Any]] = []
        for index in range(options.activations):
            plan = self._plan(rng, options, candidates)
            if plan is None:
                summary.skipped += 1
                continue
            events.append((plan.start, index, "activate", plan))
            if plan.approval and plan.approver and plan.decision_at:
                events.append((plan.decision_at, index, "decide", plan))
            if plan.deactivate_at:
                events.append((plan.deactivate_at, index, "deactivate", plan))
        for index in range(options.outside_pim_assignments):
            at = window_start + (self.now - window_start) * rng.random()
            events.append((at, options.activations + index, "drift", None))
        events.sort(key=lambda e: (e[0], e[1], e[2] != "activate"))
        request_of: dict[int, str] = {}
        for at, index, kind, plan in events:
            lifecycle.advance(self.state, at)
            if kind == "activate":
                self._activate(plan, at, index, request_of, summary)
            elif kind == "decide" and index in request_of:
                self._decide(plan, at, request_of[index], summary)
            elif kind == "deactivate" and index in request_of:
                self._deactivate(plan, at, summary)
            elif kind == "drift":
                self._drift(rng, at, summary)
        lifecycle.advance(self.state, self.now)
        summary.still_active = sum(
            1
            for request_id in summary.request_ids
            if (s := self.state.actives.get(request_id)) is not None and s.effective(self.now)
        )
        return summary.as_json(window_start, self.now)

    def _activate(
        self, plan: _Plan, at: datetime, index: int, request_of: dict[int, str], summary: Summary
    ) -> None:
        eligibility = plan.eligibility
        body: dict[str, Any] = {
            "action": "selfActivate",
            "principalId": eligibility.principal_id,
            "roleDefinitionId": eligibility.role_definition_id,
            "directoryScopeId": eligibility.directory_scope_id,
            "justification": plan.justification,
            "scheduleInfo": {
                "startDateTime": format_datetime(at),
                "expiration": {"type": "afterDuration", "duration": format_duration(plan.duration)},
            },
        }
        if plan.ticket:
            body["ticketInfo"] = {"ticketNumber": plan.ticket, "ticketSystem": "ServiceNow"}
        policy = self.state.policy_for_role(eligibility.role_definition_id)
        enabled, claim = policies.auth_context(policy)
        caller = Caller(mfa=True, acrs=frozenset({claim}) if enabled and claim else frozenset())
        try:
            request = self.engine.submit("assignment", body, now=at, caller=caller)
        except GraphError:
            summary.skipped += 1
            return
        request_of[index] = request.id
        summary.requested += 1
        summary.request_ids.append(request.id)
        summary.by_role[eligibility.role_definition_id] += 1
        summary.with_ticket += plan.ticket is not None
        summary.smelly_justifications += plan.smelly
        _, maximum = policies.expiration(policy, "Expiration_EndUser_Assignment")
        summary.at_max_duration += plan.duration == (maximum or timedelta(hours=8))
        if request.status in {"Provisioned", "Granted"}:
            summary.provisioned += 1

    def _decide(self, plan: _Plan, at: datetime, request_id: str, summary: Summary) -> None:
        assert plan.approver is not None
        request = self.engine.decide(
            request_id, approve=plan.approve, approver_id=plan.approver, now=at
        )
        if request.status == "Denied":
            summary.denied += 1
        elif request.status in {"Provisioned", "Granted"}:
            summary.approved += 1
            summary.provisioned += 1

    def _deactivate(self, plan: _Plan, at: datetime, summary: Summary) -> None:
        body = {
            "action": "selfDeactivate",
            "principalId": plan.eligibility.principal_id,
            "roleDefinitionId": plan.eligibility.role_definition_id,
            "directoryScopeId": plan.eligibility.directory_scope_id,
        }
        try:
            self.engine.submit("assignment", body, now=at, caller=Caller(mfa=True))
        except GraphError:
            return
        summary.deactivated_early += 1

    def _drift(self, rng: random.Random, at: datetime, summary: Summary) -> None:
        excluded = set(self.state.profile.break_glass_ids)
        users = [
            u for u in self.state.users.values() if u.id not in excluded and u.user_type == "Member"
        ]
        for _ in range(50):
            user = rng.choice(users)
            role_id = rng.choice(HIGH_IMPACT_ROLES)
            if self.state.actives.find(user.id, role_id, "/") is None:
                inject_outside_pim(self.state, user.id, role_id, at=at)
                summary.outside_pim_assignments += 1
                return


def inject_outside_pim(
    state: SimState, principal_id: str, role_id: str, *, at: datetime, actor_id: str | None = None
) -> Schedule:
    """Drift: somebody assigns a role directly in Entra, bypassing PIM."""
    schedule = add_outside_pim_assignment(state, principal_id, role_id, at=at, cause="outside_pim")
    audit.record_role_change(
        state,
        at=at,
        activity="Add member to role outside of PIM (permanent)",
        operation_type="Add",
        initiator=Initiator("user", actor_id) if actor_id else Initiator("system"),
        principal_id=principal_id,
        role_id=role_id,
        request_id=None,
    )
    return schedule
