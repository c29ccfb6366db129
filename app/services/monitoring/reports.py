"""The monitoring reports (activations, drift) and what the health gates observe."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from app.db.repos.monitoring import MonitoringRepository
from app.db.repos.plans import PlanRepository
from app.domain.drift import DriftFinding, GlobalAdminCount, classify_drift, count_global_admins
from app.domain.health import GateObservation
from app.domain.plan import PlanSpec
from app.domain.roles import BUILT_IN_ROLES, GLOBAL_ADMINISTRATOR, role_name
from app.domain.signals import (
    JustificationRules,
    ReadingRules,
    SignalReport,
    SignalRules,
    SpikeRule,
    build_signal_report,
    compute_signals,
    week_start,
)
from app.problems import InvalidInputError, NotFoundError
from app.services.monitoring.collect import REQUESTS, SOURCES, last_success
from app.services.monitoring.facts import (
    drift_scopes,
    load_activations,
    permanent_addition_audits,
    role_names_of,
    standing_assignments,
)
from app.services.tenants import get_tenant
from app.settings import MonitoringSettings

DEFAULT_PERIOD = "P28D"
MIN_PERIOD = timedelta(days=1)
MAX_PERIOD = timedelta(days=366)
_PERIOD = re.compile(r"^P(?:(\d{1,3})W)?(?:(\d{1,3})D)?$")


def signal_rules(settings: MonitoringSettings) -> SignalRules:
    return SignalRules(
        justifications=JustificationRules.of(
            min_length=settings.min_justification_length, phrases=settings.smelly_justifications
        ),
        reading=ReadingRules(
            attention_share=settings.at_max_attention_share,
            renewal_share_for_tight=settings.renewal_share_for_tight,
            min_activations=settings.min_activations_for_reading,
        ),
        renewal_gap=timedelta(minutes=settings.renewal_gap_minutes),
    )


def spike_rule(settings: MonitoringSettings) -> SpikeRule:
    return SpikeRule(
        factor=settings.spike_factor,
        min_count=settings.spike_min_count,
        baseline_weeks=settings.baseline_weeks,
    )


# --- query parameters -------------------------------------------------------------------------


def parse_period(text: str) -> timedelta:
    """An ISO-8601 duration in weeks and/or days, from ``P1D`` to ``P366D`` (``P4W``, ``P30D``)."""
    match = _PERIOD.match(text.strip().upper())
    if match is None or not any(match.groups()):
        problem = "give an ISO-8601 duration in weeks or days, e.g. P7D, P4W or P90D"
    else:
        weeks, days = (int(group or 0) for group in match.groups())
        period = timedelta(weeks=weeks, days=days)
        if MIN_PERIOD <= period <= MAX_PERIOD:
            return period
        problem = "must be between P1D and P366D"
    raise InvalidInputError(f"period: {problem} (got {text!r})", errors=[("query.period", problem)])


def parse_role(text: str, known_names: dict[str, str]) -> str:
    """A role template id, or a role's name (as a plan or Entra spells it) → its id."""
    value = text.strip()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        pass
    folded = value.casefold()
    for role_id, name in known_names.items():
        if name.casefold() == folded:
            return role_id
    for role in BUILT_IN_ROLES:
        if role.name.casefold() == folded:
            return role.id
    problem = "not a role template id (GUID) or the name of a known role"
    raise InvalidInputError(f"role: {problem} (got {text!r})", errors=[("query.role", problem)])


# --- collection status ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceStatus:
    source: str
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    stored: int


@dataclass(frozen=True)
class CollectionStatus:
    last_success_at: datetime | None
    """When every source last succeeded together; None if one never has."""
    stale: bool
    covers_from: datetime | None
    sources: tuple[SourceStatus, ...]


def collection_status(
    session: Session, tenant_id: str, *, now: datetime, max_age: timedelta
) -> CollectionStatus:
    cursors = MonitoringRepository(session).list_cursors(tenant_id)
    by_source = {c.source: c for c in cursors}
    success = last_success(cursors)
    requests = by_source.get(REQUESTS)
    return CollectionStatus(
        last_success_at=success,
        stale=success is None or now - success > max_age,
        covers_from=requests.covers_from if requests else None,
        sources=tuple(
            SourceStatus(
                source=source,
                last_run_at=cursor.last_run_at if cursor else None,
                last_success_at=cursor.last_success_at if cursor else None,
                last_error=cursor.last_error if cursor else None,
                stored=cursor.stored if cursor else 0,
            )
            for source in SOURCES
            for cursor in (by_source.get(source),)
        ),
    )


# --- activation report ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationReport:
    tenant_id: str
    period: str
    role: str | None
    generated_at: datetime
    collection: CollectionStatus
    signals: SignalReport


def activation_report(
    session: Session,
    *,
    tenant_id: str,
    period: str = DEFAULT_PERIOD,
    role: str | None = None,
    now: datetime,
    settings: MonitoringSettings,
) -> ActivationReport:
    """Signals per role and per week over the whole weeks (Monday 00:00 UTC) that ``period``
    back from ``now`` reaches into; earlier weeks feed the failed-approval baseline."""
    get_tenant(session, tenant_id)
    span = parse_period(period)
    names = role_names_of(session, tenant_id)
    role_id = parse_role(role, names) if role else None
    since = week_start(now - span)
    history_from = since - timedelta(weeks=settings.baseline_weeks)
    rules = signal_rules(settings)
    loaded = load_activations(
        session,
        tenant_id=tenant_id,
        since=history_from,
        now=now,
        role_ids=[role_id] if role_id else None,
        renewal_gap=rules.renewal_gap,
    )
    status = collection_status(
        session, tenant_id, now=now, max_age=timedelta(seconds=settings.max_data_age_seconds)
    )
    report = build_signal_report(
        loaded.activations,
        since=since,
        until=now,
        rules=rules,
        spike_rule=spike_rule(settings),
        role_max=loaded.role_max,
        role_names={r: names.get(r) or role_name(r) for r in loaded.role_max},
        known_from=status.covers_from,
    )
    return ActivationReport(
        tenant_id=tenant_id,
        period=period.strip().upper(),
        role=role_id,
        generated_at=now,
        collection=status,
        signals=report,
    )


# --- drift report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    tenant_id: str
    generated_at: datetime
    collection: CollectionStatus
    findings: tuple[DriftFinding, ...]
    global_administrators: GlobalAdminCount


def plan_drift(
    session: Session, *, tenant_id: str, plan_id: str | None = None
) -> list[DriftFinding]:
    tenant = get_tenant(session, tenant_id)
    return classify_drift(
        standing_assignments(session, tenant_id),
        drift_scopes(session, tenant, plan_id=plan_id),
        break_glass=frozenset(b.lower() for b in tenant.break_glass_ids),
        audits=permanent_addition_audits(session, tenant_id),
    )


def drift_report(
    session: Session, *, tenant_id: str, now: datetime, settings: MonitoringSettings
) -> DriftReport:
    tenant = get_tenant(session, tenant_id)
    findings = plan_drift(session, tenant_id=tenant_id)
    admins = count_global_admins(
        standing_assignments(session, tenant_id, role_ids=[GLOBAL_ADMINISTRATOR]),
        break_glass=frozenset(b.lower() for b in tenant.break_glass_ids),
    )
    return DriftReport(
        tenant_id=tenant_id,
        generated_at=now,
        collection=collection_status(
            session, tenant_id, now=now, max_age=timedelta(seconds=settings.max_data_age_seconds)
        ),
        findings=tuple(findings),
        global_administrators=admins,
    )


# --- health gates -----------------------------------------------------------------------------


def gate_observation(
    session: Session,
    *,
    tenant_id: str,
    plan_id: str,
    window: timedelta,
    now: datetime,
    settings: MonitoringSettings,
) -> GateObservation:
    """What a health gate of this plan sees: its target roles' activations over the window
    ending now, and the plan's open drift."""
    plan = PlanRepository(session).get(plan_id)
    if plan is None:
        raise NotFoundError(f"no plan with id {plan_id}")
    roles = [str(r) for r in PlanSpec.model_validate(plan.spec).role_ids()]
    rules = signal_rules(settings)
    loaded = load_activations(
        session,
        tenant_id=tenant_id,
        since=now - window,
        now=now,
        role_ids=roles,
        renewal_gap=rules.renewal_gap,
    )
    return GateObservation(
        signals=compute_signals(loaded.activations, maximum=None, rules=rules),
        drift=tuple(plan_drift(session, tenant_id=tenant_id, plan_id=plan_id)),
    )
