"""What the pages show, computed here so that templates only format.

Which buttons appear is decided from the plan's ``allowed_events`` and the caller's role; the
server checks both again when a form is posted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from app.db.models import Phase, Plan, Tenant, Transition
from app.domain.machine import FINISHED_PLAN_STATES, Event, Gate, PhaseState, PlanState
from app.domain.plan import (
    ApplyRoleSettingsStep,
    ConvertCohortStep,
    CreateAccessReviewsStep,
    PhaseSpec,
    PlanSpec,
    RequireApprovalStep,
    SendCommsStep,
    SetNotificationRulesStep,
    Step,
)
from app.domain.progress import Progress
from app.domain.roles import role_name
from app.engine.preview import Change, PhasePreview
from app.problems import NotFoundError
from app.services import plans, tenants
from app.services.plans import PhaseView, PlanView
from app.services.tokens import Caller, Role

# Start changes a production tenant, abort and rollback undo work: each needs a confirmation.
DESTRUCTIVE: frozenset[Event] = frozenset({Event.start, Event.abort, Event.rollback})
PLAN_ACTIONS: tuple[Event, ...] = (
    Event.start,
    Event.resume,
    Event.pause,
    Event.retry,
    Event.rollback,
    Event.abort,
)
ACTION_LABELS: dict[Event, str] = {
    Event.start: "Start",
    Event.pause: "Pause",
    Event.resume: "Resume",
    Event.advance: "Advance",
    Event.retry: "Retry",
    Event.abort: "Abort",
    Event.rollback: "Roll back",
}
ACTION_HELP: dict[Event, str] = {
    Event.start: (
        "Runs the preflight checks against the tenant, takes the baseline inventory of every "
        "permanent Active assignment, then schedules the phases. Phases that are due run "
        "automatically and change the tenant: role settings, Active → Eligible conversions, mail."
    ),
    Event.pause: (
        "Stops the plan from starting more work. The item being converted finishes; nothing is "
        "undone. Resume to carry on."
    ),
    Event.resume: "Lets the scheduler carry on from where the plan was paused.",
    Event.advance: (
        "Passes the manual gate of this phase: it starts running now and changes the tenant."
    ),
    Event.retry: "Runs the failed phase again, for exactly the items that failed.",
    Event.abort: (
        "Stops the plan and rolls back everything it changed in the tenant, newest first. "
        "What someone else changed meanwhile is reported as drift and left alone."
    ),
    Event.rollback: (
        "Restores the baseline for what the plan touched, newest change first. What someone "
        "else changed meanwhile is reported as drift and left alone."
    ),
}
NOT_STARTED = frozenset({PlanState.draft.value, PlanState.scheduled.value})


def action_help(event: Event, view: PlanView) -> str:
    if event is Event.abort and view.row.state in NOT_STARTED:
        return "Cancels the plan. Nothing has changed in the tenant yet, so nothing is undone."
    return ACTION_HELP[event]


STEP_LABELS: dict[str, str] = {
    "apply_role_settings": "Apply role settings",
    "convert_cohort": "Convert Active → Eligible",
    "send_comms": "Send the comms page",
    "require_approval": "Require approval",
    "create_access_reviews": "Create access reviews",
    "set_notification_rules": "Alert on assignment and activation",
}


@dataclass(frozen=True)
class Action:
    event: Event
    label: str
    destructive: bool
    phase_key: str | None = None

    @property
    def name(self) -> str:
        return self.event.value


@dataclass(frozen=True)
class Segment:
    kind: str
    label: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ProgressBar:
    progress: Progress
    segments: list[Segment]
    summary: str

    @property
    def empty(self) -> bool:
        return self.progress.total == 0


_SEGMENTS = (
    ("done", "done"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("kept_active", "kept active"),
    ("reverted", "rolled back"),
    ("remaining", "remaining"),
)


def progress_bar(progress: Progress) -> ProgressBar:
    total = progress.total
    segments: list[Segment] = []
    x = 0.0
    parts: list[str] = []
    for attr, label in _SEGMENTS:
        count = int(getattr(progress, attr))
        if count == 0 and attr not in {"done", "failed", "remaining"}:
            continue
        parts.append(f"{count} {label}")
        if total and count:
            width = 100.0 * count / total
            segments.append(Segment(attr, label, count, round(x, 3), round(width, 3)))
            x += width
    summary = ", ".join(parts) + (f" of {total}" if total else "")
    return ProgressBar(progress, segments, summary if total else "no conversions")


def sum_progress(progresses: Sequence[Progress]) -> Progress:
    return Progress(
        done=sum(p.done for p in progresses),
        failed=sum(p.failed for p in progresses),
        remaining=sum(p.remaining for p in progresses),
        skipped=sum(p.skipped for p in progresses),
        kept_active=sum(p.kept_active for p in progresses),
        reverted=sum(p.reverted for p in progresses),
    )


def step_text(step: Step) -> str:
    label = STEP_LABELS.get(step.kind, step.kind)
    if isinstance(step, ConvertCohortStep):
        cohort = step.cohort
        if cohort.binding:
            return f"{label} for {cohort.binding}"
        if cohort.principals is not None:
            return f"{label} for {len(cohort.principals)} listed principal(s)"
        return f"{label} for every remaining holder"
    if isinstance(step, ApplyRoleSettingsStep) and step.settings is not None:
        shown = step.settings.model_dump(exclude_none=True)
        changes = ", ".join(
            f"{k.replace('_', ' ')} {_setting(v)}" for k, v in sorted(shown.items())
        )
        return f"{label}: {changes}" if changes else label
    if isinstance(step, RequireApprovalStep):
        return f"{label} ({len(step.rules)} rule(s))"
    if isinstance(step, CreateAccessReviewsStep):
        return f"{label} every {step.interval_months} months"
    if isinstance(step, SetNotificationRulesStep):
        to = ", ".join(ref.binding or ref.address or "" for ref in step.recipients)
        return f"{label}: {len(step.rules)} rule(s) mail {to}"
    if isinstance(step, SendCommsStep):
        return f"{label}: “{step.subject}”"
    return label


def _setting(value: Any) -> str:
    if isinstance(value, timedelta):
        hours = value.total_seconds() / 3600
        return f"{hours:g} h"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@dataclass(frozen=True)
class PhaseRow:
    view: PhaseView
    spec: PhaseSpec | None
    bar: ProgressBar
    steps: list[str]
    advance: Action | None
    sends_comms: bool
    converts: bool
    is_current: bool

    @property
    def row(self) -> Phase:
        return self.view.row


@dataclass(frozen=True)
class PlanPage:
    view: PlanView
    tenant: Tenant | None
    phases: list[PhaseRow]
    actions: list[Action]
    overall: ProgressBar
    finished: bool
    can_operate: bool
    preflight: dict[str, Any] | None = None
    preflight_failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def preflight_at(self) -> datetime | None:
        at = (self.preflight or {}).get("at")
        try:
            return datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            return None

    @property
    def plan(self) -> Plan:
        return self.view.row

    @property
    def comms_phases(self) -> list[str]:
        return [p.row.key for p in self.phases if p.sends_comms]


def current_phase_key(view: PlanView) -> str | None:
    """The phase an operator looks at first; none once the plan is finished."""
    if PlanState(view.row.state) in FINISHED_PLAN_STATES:
        return None
    for wanted in (PhaseState.running, PhaseState.awaiting_gate, PhaseState.failed):
        for phase in view.phases:
            if phase.row.state == wanted.value:
                return str(phase.row.key)
    for phase in view.phases:
        if phase.row.state in {PhaseState.pending.value, PhaseState.due.value}:
            return str(phase.row.key)
    return None


def plan_page(view: PlanView, *, tenant: Tenant | None, caller: Caller) -> PlanPage:
    spec: PlanSpec | None
    try:
        spec = view.spec
    except ValueError:
        spec = None
    can_operate = caller.role.at_least(Role.operator)
    allowed = set(view.allowed_events) if can_operate else set()
    actions = [
        Action(event, ACTION_LABELS[event], event in DESTRUCTIVE)
        for event in PLAN_ACTIONS
        if event in allowed
    ]
    current = current_phase_key(view)
    rows = []
    for phase in view.phases:
        phase_spec = spec.phase(phase.row.key) if spec else None
        gated = (
            phase.row.state == PhaseState.awaiting_gate.value
            and phase.row.gate == Gate.manual.value
        )
        rows.append(
            PhaseRow(
                view=phase,
                spec=phase_spec,
                bar=progress_bar(phase.progress),
                steps=[step_text(s) for s in phase_spec.steps] if phase_spec else [],
                advance=Action(Event.advance, ACTION_LABELS[Event.advance], False, phase.row.key)
                if gated and Event.advance in allowed
                else None,
                sends_comms=bool(
                    phase_spec and any(isinstance(s, SendCommsStep) for s in phase_spec.steps)
                ),
                converts=bool(
                    phase_spec and any(isinstance(s, ConvertCohortStep) for s in phase_spec.steps)
                )
                or phase.progress.total > 0,
                is_current=phase.row.key == current,
            )
        )
    preflight = view.row.preflight
    failures = [
        c
        for c in (preflight or {}).get("checks", [])
        if not c.get("ok") and c.get("severity", "error") == "error"
    ]
    return PlanPage(
        view=view,
        tenant=tenant,
        phases=rows,
        actions=actions,
        overall=progress_bar(sum_progress([p.progress for p in view.phases])),
        finished=PlanState(view.row.state) in FINISHED_PLAN_STATES,
        can_operate=can_operate,
        preflight=preflight,
        preflight_failures=failures,
    )


def load_plan_page(session: Session, plan_id: str, caller: Caller) -> PlanPage:
    view = plans.get_plan_view(session, plan_id)
    try:
        tenant: Tenant | None = tenants.get_tenant(session, view.row.tenant_id)
    except NotFoundError:
        tenant = None
    return plan_page(view, tenant=tenant, caller=caller)


@dataclass(frozen=True)
class HistoryEntry:
    row: Transition
    checks: list[dict[str, Any]]
    passed: bool | None


def history_entries(rows: Sequence[Transition]) -> list[HistoryEntry]:
    """Newest first; preflight notes (and the start that carried one) list their checks."""
    entries = []
    for row in reversed(rows):
        details = row.details or {}
        report = details if row.event == "preflight" else details.get("preflight")
        checks = list(report.get("checks", [])) if isinstance(report, dict) else []
        passed = report.get("passed") if isinstance(report, dict) else None
        entries.append(HistoryEntry(row, checks, passed))
    return entries


def rollback_choices(view: PlanView) -> list[tuple[str, str]]:
    """Phases a partial rollback may target (they ran); the default rolls back everything."""
    ran = {PhaseState.running.value, PhaseState.completed.value, PhaseState.failed.value}
    return [(p.row.key, p.row.title) for p in view.phases if p.row.state in ran]


def freeze_label(automation: dict[str, Any]) -> str:
    if automation.get("frozen"):
        return "Frozen: no automatic progression"
    windows = automation.get("windows") or []
    if not windows:
        return "Automatic progression at any time"
    return f"Automatic progression in {len(windows)} window(s)"


def target_text(target: dict[str, Any]) -> str:
    """A journal entry's target in words: role name, principal, rule, recipient, review."""
    parts: list[str] = []
    if target.get("role_id"):
        parts.append(role_name(str(target["role_id"])))
    for key, label in (
        ("principal_id", "principal"),
        ("rule_id", "rule"),
        ("to", "to"),
        ("display_name", "review"),
    ):
        if target.get(key):
            parts.append(f"{label} {target[key]}")
    if target.get("scope") not in (None, "/"):
        parts.append(f"scope {target['scope']}")
    return " · ".join(parts) or ", ".join(f"{k}={v}" for k, v in sorted(target.items()))


_CHANGE_FIELDS = tuple(f.name for f in fields(Change))


def previews_from_json(phases: Sequence[dict[str, Any]]) -> list[PhasePreview]:
    """A dry run back from its JSON form (``preview_json``, what a preview job keeps)."""
    return [
        PhasePreview(
            key=str(phase["phase"]),
            title=str(phase.get("title") or phase["phase"]),
            changes=[
                (int(change.get("step", 0)), Change(**{k: change.get(k) for k in _CHANGE_FIELDS}))
                for change in phase.get("changes", [])
            ],
        )
        for phase in phases
    ]


def change_counts(preview: PhasePreview) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for _, change in preview.changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    return [(STEP_LABELS.get(kind, kind), n) for kind, n in counts.items()]


def live_fingerprint(page: PlanPage, now: datetime) -> str:
    """Changes when anything the live fragment shows changes (relative times every 10 s)."""
    plan = page.plan
    material = repr(
        (
            plan.state,
            plan.version,
            plan.status_reason,
            [
                (p.row.key, p.row.state, p.row.status_reason, p.row.due_at, p.view.progress)
                for p in page.phases
            ],
            [a.name for a in page.actions],
            int(now.timestamp() // 10),
        )
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]
