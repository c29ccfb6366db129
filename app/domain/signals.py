"""The playbook's "What I monitor afterwards", as pure computations over collected activity.

One :class:`ActivationFact` per ``selfActivate`` request and one :class:`DeactivationFact` per
``selfDeactivate`` come in; counts, shares and plain-language readings come out, per role and per
week. Nothing here reads a clock or a database: ``now`` arrives as a value.

Definitions (they are what the reports and the health gates count):

* requested duration: the request's window (``scheduleInfo`` start to its end or
  ``expiration.duration``), compared with the role's activation maximum at collection time;
* actual duration: from the activation's start to its end, or to an earlier ``selfDeactivate``;
  unknown while it still runs;
* failed approvals: requests that did not go through: denied, failed, or expired waiting for an
  approver (a requester who cancels is counted apart);
* a smelly justification: none, shorter than the minimum, or one of a configured list of stock
  phrases ("doing my job"), compared without case, spacing or trailing punctuation.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

WEEK = timedelta(days=7)


class ApprovalOutcome(StrEnum):
    not_required = "not_required"
    pending = "pending"
    approved = "approved"
    denied = "denied"
    failed = "failed"
    expired = "expired"
    canceled = "canceled"


FAILED_APPROVALS = frozenset(
    {ApprovalOutcome.denied, ApprovalOutcome.failed, ApprovalOutcome.expired}
)
GRANTED = frozenset({ApprovalOutcome.not_required, ApprovalOutcome.approved})

# Request statuses (reference §5.3), case-folded. Revoked on a selfActivate means it was granted
# and later taken away, so it counts as granted.
_GRANTED_STATUSES = frozenset(
    {
        "provisioned",
        "granted",
        "schedulecreated",
        "pendingprovisioning",
        "pendingschedulecreation",
        "revoked",
    }
)
_WAITING_STATUSES = frozenset({"pendingapproval", "pendingadmindecision"})


def approval_outcome(
    status: str | None, *, approval_required: bool, expired: bool = False
) -> ApprovalOutcome:
    """What became of an activation request, from its status and (for expiry) the audit log.

    Graph does not document how an approval that timed out shows in ``status``; the audit
    activity ``PIM activation request expired`` says so, hence ``expired``.
    """
    folded = (status or "").casefold()
    if folded in _GRANTED_STATUSES:
        return ApprovalOutcome.approved if approval_required else ApprovalOutcome.not_required
    if expired:
        return ApprovalOutcome.expired
    if folded == "denied":
        return ApprovalOutcome.denied
    if folded == "failed":
        return ApprovalOutcome.failed
    if folded == "canceled":
        return ApprovalOutcome.canceled
    return ApprovalOutcome.pending


@dataclass(frozen=True)
class ActivationFact:
    """One ``selfActivate`` request as collected."""

    request_id: str
    principal_id: str
    role_definition_id: str
    requested_at: datetime
    status: str
    approval_required: bool = False
    directory_scope_id: str = "/"
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_duration: timedelta | None = None
    justification: str | None = None
    ticket_number: str | None = None
    principal_name: str | None = None
    expired: bool = False

    @property
    def requested_duration(self) -> timedelta | None:
        if self.start_at is None or self.end_at is None:
            return None
        return self.end_at - self.start_at

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.principal_id, self.role_definition_id, self.directory_scope_id)


@dataclass(frozen=True)
class DeactivationFact:
    """A ``selfDeactivate``: the principal ended an activation early."""

    principal_id: str
    role_definition_id: str
    at: datetime
    directory_scope_id: str = "/"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.principal_id, self.role_definition_id, self.directory_scope_id)


@dataclass(frozen=True)
class Activation:
    """An activation request with what became of it."""

    fact: ActivationFact
    outcome: ApprovalOutcome
    actual_duration: timedelta | None = None
    ended_early: bool = False
    renewed: bool = False

    @property
    def at_max(self) -> bool | None:
        """Asked for the role's whole maximum (None when either is unknown)."""
        requested, maximum = self.fact.requested_duration, self.fact.max_duration
        if requested is None or maximum is None or maximum <= timedelta(0):
            return None
        return requested >= maximum

    @property
    def has_ticket(self) -> bool:
        return bool((self.fact.ticket_number or "").strip())


def resolve_activations(
    facts: Iterable[ActivationFact],
    deactivations: Iterable[DeactivationFact],
    *,
    now: datetime,
    renewal_gap: timedelta,
) -> list[Activation]:
    """Join requests with early ends, and mark activations renewed right after they ended.

    A deactivation ends the granted activation of the same principal, role and scope whose
    window contains it. An activation is *renewed* when the same principal asks for the same
    role again within ``renewal_gap`` of its actual end.
    """
    ordered = sorted(facts, key=lambda f: (f.requested_at, f.request_id))
    ends: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    for deactivation in deactivations:
        ends[deactivation.key].append(deactivation.at)
    for times in ends.values():
        times.sort()
    requests_by_key: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    for fact in ordered:
        requests_by_key[fact.key].append(fact.requested_at)

    result: list[Activation] = []
    for fact in ordered:
        outcome = approval_outcome(
            fact.status, approval_required=fact.approval_required, expired=fact.expired
        )
        if outcome not in GRANTED or fact.start_at is None or fact.start_at > now:
            result.append(Activation(fact, outcome))
            continue
        start, end = fact.start_at, fact.end_at
        early = next(
            (t for t in ends.get(fact.key, []) if start <= t and (end is None or t < end)), None
        )
        actual_end: datetime | None
        if early is not None:
            actual_end = early
        elif end is not None and end <= now:
            actual_end = end
        else:
            actual_end = None
        renewed = False
        if actual_end is not None and early is None:
            renewed = any(
                actual_end <= at <= actual_end + renewal_gap for at in requests_by_key[fact.key]
            )
        result.append(
            Activation(
                fact,
                outcome,
                actual_duration=None if actual_end is None else actual_end - start,
                ended_early=early is not None,
                renewed=renewed,
            )
        )
    return result


# --- justifications ---------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = ".,;:!?-_'\"()[]{}…"


def normalize_justification(text: str | None) -> str:
    """Lower case, single spaces, no punctuation at the ends: "Doing my job!!" → "doing my job"."""
    return _SPACES.sub(" ", (text or "").casefold()).strip().strip(_EDGE_PUNCTUATION).strip()


class Smell(StrEnum):
    missing = "missing"
    too_short = "too_short"
    stock_phrase = "stock_phrase"


@dataclass(frozen=True)
class JustificationRules:
    min_length: int = 10
    phrases: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, min_length: int, phrases: Iterable[str]) -> JustificationRules:
        return cls(min_length, frozenset(normalize_justification(p) for p in phrases) - {""})


def justification_smell(text: str | None, rules: JustificationRules) -> Smell | None:
    """Why a justification says nothing, or None when it reads like a reason."""
    stripped = (text or "").strip()
    if not stripped:
        return Smell.missing
    if normalize_justification(stripped) in rules.phrases:
        return Smell.stock_phrase
    if len(stripped) < rules.min_length:
        return Smell.too_short
    return None


# --- durations --------------------------------------------------------------------------------

DURATION_BUCKETS = ("0-25%", "25-50%", "50-75%", "75-100%", "max")
"""Requested duration as a share of the role's maximum; the last bucket is the maximum itself."""


def duration_bucket(requested: timedelta, maximum: timedelta) -> int:
    if requested >= maximum:
        return 4
    ratio = requested / maximum
    for index, upper in enumerate((0.25, 0.5, 0.75)):
        if ratio <= upper:
            return index
    return 3


class DurationReading(StrEnum):
    not_enough_data = "not_enough_data"
    healthy = "healthy"
    max_too_tight = "max_too_tight"
    being_gamed = "being_gamed"


@dataclass(frozen=True)
class ReadingRules:
    attention_share: float = 0.5
    renewal_share_for_tight: float = 0.25
    min_activations: int = 5


@dataclass(frozen=True)
class DurationStats:
    measured: int
    buckets: tuple[int, ...]
    at_max: int
    share_at_max: float | None
    median_requested: timedelta | None
    median_actual: timedelta | None
    ended_early: int
    at_max_renewed: int
    at_max_ended_early: int
    reading: DurationReading
    reading_text: str


def format_duration(value: timedelta) -> str:
    """``8h``, ``1h 30m``, ``45m`` for readings meant for people."""
    minutes = round(value.total_seconds() / 60)
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours}h {rest}m"
    return f"{hours}h" if hours else f"{rest}m"


def _percent(share: float) -> str:
    return f"{round(share * 100)}%"


def read_durations(
    *,
    measured: int,
    at_max: int,
    renewed: int,
    ended_early: int,
    maximum: timedelta | None,
    rules: ReadingRules,
    renewal_gap: timedelta,
) -> tuple[DurationReading, str]:
    """Plain language for the share at the maximum: fine, the maximum is too tight, or gamed.

    Most activations at the maximum mean one of two things (playbook: "your max is too tight or
    your team is gaming it"). People who really need longer come straight back for more: their
    max-length activations are renewed within minutes of ending. People who take the maximum by
    habit don't: the work fits in less time.
    """
    the_max = format_duration(maximum) if maximum is not None else "the role's maximum"
    if measured < rules.min_activations:
        return (
            DurationReading.not_enough_data,
            f"Only {measured} activation(s) with a known duration: too few to read.",
        )
    share = at_max / measured
    if share < rules.attention_share:
        return (
            DurationReading.healthy,
            f"{_percent(share)} of activations ask for the full {the_max}: people ask for "
            "what they need.",
        )
    gap = format_duration(renewal_gap)
    renewed_share = renewed / at_max if at_max else 0.0
    if renewed_share >= rules.renewal_share_for_tight:
        return (
            DurationReading.max_too_tight,
            f"Max too tight: {_percent(share)} of activations ask for the full {the_max} and "
            f"{renewed} of those {at_max} were renewed within {gap} of ending. The work needs "
            "longer than the maximum allows; consider raising it.",
        )
    return (
        DurationReading.being_gamed,
        f"Being gamed: {_percent(share)} of activations ask for the full {the_max}, but only "
        f"{renewed} of those {at_max} were renewed within {gap} and {ended_early} were ended "
        "early. The work fits in less time; coach people to ask for what they need (or lower "
        "the maximum).",
    )


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    seconds = statistics.median(v.total_seconds() for v in values)
    return timedelta(seconds=round(seconds))


def duration_stats(
    activations: Sequence[Activation],
    *,
    maximum: timedelta | None,
    rules: ReadingRules,
    renewal_gap: timedelta,
) -> DurationStats:
    buckets = [0] * len(DURATION_BUCKETS)
    requested: list[timedelta] = []
    at_max = renewed = at_max_early = 0
    for activation in activations:
        asked, role_max = activation.fact.requested_duration, activation.fact.max_duration
        if asked is None or role_max is None or role_max <= timedelta(0):
            continue
        requested.append(asked)
        bucket = duration_bucket(asked, role_max)
        buckets[bucket] += 1
        if bucket == len(DURATION_BUCKETS) - 1:
            at_max += 1
            renewed += activation.renewed
            at_max_early += activation.ended_early
    measured = len(requested)
    reading, text = read_durations(
        measured=measured,
        at_max=at_max,
        renewed=renewed,
        ended_early=at_max_early,
        maximum=maximum,
        rules=rules,
        renewal_gap=renewal_gap,
    )
    actual = [a.actual_duration for a in activations if a.actual_duration is not None]
    return DurationStats(
        measured=measured,
        buckets=tuple(buckets),
        at_max=at_max,
        share_at_max=round(at_max / measured, 4) if measured else None,
        median_requested=_median(requested),
        median_actual=_median(actual),
        ended_early=sum(a.ended_early for a in activations),
        at_max_renewed=renewed,
        at_max_ended_early=at_max_early,
        reading=reading,
        reading_text=text,
    )


# --- the signal set ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalRules:
    justifications: JustificationRules = JustificationRules()
    reading: ReadingRules = ReadingRules()
    renewal_gap: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class TicketStats:
    without_ticket: int
    share_without_ticket: float | None


@dataclass(frozen=True)
class JustificationStats:
    smelly: int
    missing: int
    too_short: int
    stock_phrase: int


@dataclass(frozen=True)
class ApprovalStats:
    required: int
    approved: int
    denied: int
    failed: int
    expired: int
    canceled: int
    pending: int
    failed_approvals: int
    """denied + failed + expired: requests that did not go through."""


@dataclass(frozen=True)
class SignalSet:
    activations: int
    granted: int
    duration: DurationStats
    tickets: TicketStats
    justifications: JustificationStats
    approvals: ApprovalStats


def compute_signals(
    activations: Sequence[Activation], *, maximum: timedelta | None, rules: SignalRules
) -> SignalSet:
    total = len(activations)
    without_ticket = sum(not a.has_ticket for a in activations)
    smells = [justification_smell(a.fact.justification, rules.justifications) for a in activations]
    outcomes = [a.outcome for a in activations]

    def count(outcome: ApprovalOutcome) -> int:
        return sum(o is outcome for o in outcomes)

    return SignalSet(
        activations=total,
        granted=sum(o in GRANTED for o in outcomes),
        duration=duration_stats(
            activations, maximum=maximum, rules=rules.reading, renewal_gap=rules.renewal_gap
        ),
        tickets=TicketStats(
            without_ticket=without_ticket,
            share_without_ticket=round(without_ticket / total, 4) if total else None,
        ),
        justifications=JustificationStats(
            smelly=sum(s is not None for s in smells),
            missing=sum(s is Smell.missing for s in smells),
            too_short=sum(s is Smell.too_short for s in smells),
            stock_phrase=sum(s is Smell.stock_phrase for s in smells),
        ),
        approvals=ApprovalStats(
            required=sum(a.fact.approval_required for a in activations),
            approved=count(ApprovalOutcome.approved),
            denied=count(ApprovalOutcome.denied),
            failed=count(ApprovalOutcome.failed),
            expired=count(ApprovalOutcome.expired),
            canceled=count(ApprovalOutcome.canceled),
            pending=count(ApprovalOutcome.pending),
            failed_approvals=sum(o in FAILED_APPROVALS for o in outcomes),
        ),
    )


# --- weeks and spikes -------------------------------------------------------------------------


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week ``at`` falls in."""
    day = at.astimezone(UTC).date()
    return datetime.combine(day - timedelta(days=day.weekday()), time(), tzinfo=UTC)


def weeks_covering(since: datetime, until: datetime) -> list[datetime]:
    """Starts of the weeks that overlap ``[since, until)``, oldest first."""
    weeks = []
    current = week_start(since)
    while current < until:
        weeks.append(current)
        current += WEEK
    return weeks


@dataclass(frozen=True)
class SpikeRule:
    factor: float = 2.0
    min_count: int = 3
    baseline_weeks: int = 4


@dataclass(frozen=True)
class SpikeCheck:
    baseline: float | None
    """Mean failed approvals per week over the trailing weeks; None without any history."""
    spike: bool


def spike_check(
    counts: Mapping[datetime, int],
    week: datetime,
    *,
    known_from: datetime | None,
    rule: SpikeRule,
) -> SpikeCheck:
    """Is this week's count of failed approvals a spike against the trailing weeks' mean?

    A spike is at least ``min_count`` failures and more than ``factor`` times the baseline
    (a quiet history has a baseline of 0, so ``min_count`` failures are then a spike). Weeks
    before ``known_from`` (the start of the collected history) are unknown, not zero.
    """
    first_known = week_start(known_from) if known_from is not None else None
    previous = [
        week - WEEK * i
        for i in range(1, rule.baseline_weeks + 1)
        if first_known is None or week - WEEK * i >= first_known
    ]
    if not previous:
        return SpikeCheck(None, False)
    baseline = sum(counts.get(w, 0) for w in previous) / len(previous)
    current = counts.get(week, 0)
    spike = current >= rule.min_count and current > rule.factor * baseline
    return SpikeCheck(round(baseline, 4), spike)


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekSignals:
    week_start: datetime
    signals: SignalSet
    failed_approvals_baseline: float | None
    failed_approvals_spike: bool


@dataclass(frozen=True)
class RoleSignals:
    role_definition_id: str
    role_name: str
    max_duration: timedelta | None
    totals: SignalSet
    weeks: tuple[WeekSignals, ...]


@dataclass(frozen=True)
class CoachingEntry:
    principal_id: str
    principal_name: str | None
    activations: int
    smelly_justifications: int
    without_ticket: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class SignalReport:
    since: datetime
    until: datetime
    totals: SignalSet
    weeks: tuple[WeekSignals, ...]
    roles: tuple[RoleSignals, ...]
    coaching: tuple[CoachingEntry, ...]
    spikes: int = field(default=0)


def _weekly(
    activations: Sequence[Activation],
    history: Sequence[Activation],
    weeks: Sequence[datetime],
    *,
    maximum: timedelta | None,
    rules: SignalRules,
    spike_rule: SpikeRule,
    known_from: datetime | None,
) -> tuple[WeekSignals, ...]:
    failed_by_week: dict[datetime, int] = defaultdict(int)
    for activation in history:
        if activation.outcome in FAILED_APPROVALS:
            failed_by_week[week_start(activation.fact.requested_at)] += 1
    by_week: dict[datetime, list[Activation]] = defaultdict(list)
    for activation in activations:
        by_week[week_start(activation.fact.requested_at)].append(activation)
    result = []
    for week in weeks:
        check = spike_check(failed_by_week, week, known_from=known_from, rule=spike_rule)
        result.append(
            WeekSignals(
                week_start=week,
                signals=compute_signals(by_week.get(week, []), maximum=maximum, rules=rules),
                failed_approvals_baseline=check.baseline,
                failed_approvals_spike=check.spike,
            )
        )
    return tuple(result)


def coaching_entries(
    activations: Sequence[Activation], rules: JustificationRules, *, examples: int = 3
) -> tuple[CoachingEntry, ...]:
    """Principals who wrote smelly justifications, most first: who to coach, with examples."""
    by_principal: dict[str, list[Activation]] = defaultdict(list)
    for activation in activations:
        by_principal[activation.fact.principal_id].append(activation)
    entries = []
    for principal_id, own in by_principal.items():
        smelly = [a for a in own if justification_smell(a.fact.justification, rules) is not None]
        if not smelly:
            continue
        texts = list(
            dict.fromkeys((a.fact.justification or "").strip()[:200] or "(none)" for a in smelly)
        )
        name = next((a.fact.principal_name for a in own if a.fact.principal_name), None)
        entries.append(
            CoachingEntry(
                principal_id=principal_id,
                principal_name=name,
                activations=len(own),
                smelly_justifications=len(smelly),
                without_ticket=sum(not a.has_ticket for a in own),
                examples=tuple(texts[:examples]),
            )
        )
    entries.sort(key=lambda e: (-e.smelly_justifications, e.principal_name or "", e.principal_id))
    return tuple(entries)


def build_signal_report(
    activations: Sequence[Activation],
    *,
    since: datetime,
    until: datetime,
    rules: SignalRules,
    spike_rule: SpikeRule,
    role_max: Mapping[str, timedelta | None],
    role_names: Mapping[str, str],
    known_from: datetime | None = None,
) -> SignalReport:
    """Signals per role and per week over ``[since, until)``.

    ``activations`` may reach further back than ``since``: the earlier weeks serve as the
    trailing baseline of the failed-approval spike check.
    """
    in_period = [a for a in activations if since <= a.fact.requested_at < until]
    weeks = weeks_covering(since, until)
    by_role: dict[str, list[Activation]] = defaultdict(list)
    history_by_role: dict[str, list[Activation]] = defaultdict(list)
    for activation in in_period:
        by_role[activation.fact.role_definition_id].append(activation)
    for activation in activations:
        if activation.fact.requested_at < until:
            history_by_role[activation.fact.role_definition_id].append(activation)
    history = [a for a in activations if a.fact.requested_at < until]

    def weekly(
        own: Sequence[Activation], past: Sequence[Activation], maximum: timedelta | None
    ) -> tuple[WeekSignals, ...]:
        return _weekly(
            own,
            past,
            weeks,
            maximum=maximum,
            rules=rules,
            spike_rule=spike_rule,
            known_from=known_from,
        )

    roles = tuple(
        RoleSignals(
            role_definition_id=role_id,
            role_name=role_names.get(role_id, role_id),
            max_duration=role_max.get(role_id),
            totals=compute_signals(own, maximum=role_max.get(role_id), rules=rules),
            weeks=weekly(own, history_by_role[role_id], role_max.get(role_id)),
        )
        for role_id, own in sorted(
            by_role.items(), key=lambda item: (role_names.get(item[0], item[0]), item[0])
        )
    )
    overall = weekly(in_period, history, None)
    return SignalReport(
        since=since,
        until=until,
        totals=compute_signals(in_period, maximum=None, rules=rules),
        weeks=overall,
        roles=roles,
        coaching=coaching_entries(in_period, rules.justifications),
        spikes=sum(w.failed_approvals_spike for w in overall),
    )
