"""The monitoring page of a tenant: activation signals and drift, with server-rendered charts.

Charts are SVG built here by pure functions (every text escaped, colours as presentation
attributes, so the page's strict CSP needs no inline style or script); the template only places
them next to the numbers and the plain-language readings they illustrate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from markupsafe import Markup, escape
from starlette.responses import RedirectResponse, Response

from app.domain.roles import role_name
from app.domain.signals import DURATION_BUCKETS, RoleSignals, SignalReport, WeekSignals
from app.engine.jobs import JobProgress
from app.engine.monitoring import collect_now
from app.problems import ConflictError, InvalidInputError, UnavailableError
from app.services import tenants
from app.services.monitoring.collect import CollectionError
from app.services.monitoring.reports import (
    DEFAULT_PERIOD,
    ActivationReport,
    DriftReport,
    activation_report,
    drift_report,
)
from app.services.tokens import Role
from app.ui import flash
from app.ui.deps import ContextDep, CsrfForm, DatabaseDep, RequireOperator, RequireViewer
from app.ui.jobs import JobsDep, problem_slug, recent_jobs, run_job
from app.ui.templating import render

router = APIRouter()

ANOTHER_WORKER = "another worker is collecting this tenant's activity right now"
PERIODS = (("P7D", "last week"), ("P14D", "2 weeks"), ("P28D", "4 weeks"), ("P91D", "13 weeks"))

# Colour per tone, as SVG presentation attributes; each series also has a legend entry and a
# <title>, so colour is never the only signal.
COLOURS = {
    "ok": "#2f7d4f",
    "bad": "#b3261e",
    "warn": "#b26a00",
    "info": "#2b5fad",
    "muted": "#8a8f98",
    "line": "#202124",
}
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


# --- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    tone: str


@dataclass(frozen=True)
class Bar:
    label: str
    segments: tuple[Segment, ...]
    note: str | None = None
    """A marker above the bar (e.g. "spike")."""

    @property
    def total(self) -> float:
        return sum(s.value for s in self.segments)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _short(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ceiling(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5, 10, 20, 50 …)."""
    if value <= 1:
        return 1.0
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    description: str,
    line: Sequence[float | None] | None = None,
    line_label: str = "",
    width: int = 600,
    height: int = 220,
) -> Markup:
    """Stacked bars, an optional line over them (a baseline), a legend; SVG, every text escaped.

    ``chart_id`` must be unique in the page (it names the title for screen readers).
    """
    left, right, top, bottom = 40, 12, 22, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([b.total for b in bars] + [v for v in (line or []) if v is not None] + [0])
    scale = _ceiling(peak)
    slot = plot_w / max(len(bars), 1)
    bar_w = slot * 0.6
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'data-chart="{ident}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{COLOURS["muted"]}" stroke-width="1"/>',
        f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}" '
        f'stroke="{COLOURS["muted"]}" stroke-width="0.5" stroke-dasharray="2 3"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_FONT}>{_num(scale)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end" {_FONT}>0</text>',
    ]
    legend: dict[str, str] = {}
    for index, bar in enumerate(bars):
        x = left + slot * index + (slot - bar_w) / 2
        y: float = top + plot_h
        for segment in bar.segments:
            legend.setdefault(segment.label, segment.tone)
            if segment.value <= 0:
                continue
            h = plot_h * segment.value / scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(segment.tone, COLOURS["muted"])}">'
                f"<title>{escape(bar.label)}: {_num(segment.value)} {escape(segment.label)}"
                "</title></rect>"
            )
        centre = x + bar_w / 2
        parts.append(
            f'<text x="{centre:.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>'
            f"{escape(_short(bar.label))}<title>{escape(bar.label)}</title></text>"
        )
        if bar.total > 0:
            parts.append(
                f'<text x="{centre:.1f}" y="{y - 4:.1f}" text-anchor="middle" {_FONT}>'
                f"{_num(bar.total)}</text>"
            )
        if bar.note:
            parts.append(
                f'<text x="{centre:.1f}" y="{top - 8}" text-anchor="middle" {_FONT} '
                f'font-weight="bold" fill="{COLOURS["bad"]}">▲ {escape(bar.note)}</text>'
            )
    if line:
        points = [
            (left + slot * i + slot / 2, top + plot_h - plot_h * value / scale)
            for i, value in enumerate(line)
            if value is not None
        ]
        if points:
            joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{joined}" fill="none" stroke="{COLOURS["line"]}" '
                'stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
            parts.extend(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{COLOURS["line"]}"/>'
                for px, py in points
            )
            legend[line_label or "line"] = "line"
    legend_x: float = left
    for label, tone in legend.items():
        colour = COLOURS.get(tone, COLOURS["muted"])
        parts.append(
            f'<rect x="{legend_x}" y="{height - 18}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 9}" {_FONT}>{escape(label)}</text>'
        )
        legend_x += 24 + 7 * len(label)
    parts.append("</svg>")
    return Markup("".join(parts))


def _week_label(week: datetime) -> str:
    return week.strftime("%d %b").lstrip("0")


def weekly_activity_chart(weeks: Sequence[WeekSignals], chart_id: str) -> Markup:
    bars = [
        Bar(
            label=_week_label(w.week_start),
            segments=(
                Segment("granted", w.signals.granted, "ok"),
                Segment("failed approvals", w.signals.approvals.failed_approvals, "bad"),
                Segment(
                    "pending or canceled",
                    w.signals.approvals.pending + w.signals.approvals.canceled,
                    "muted",
                ),
            ),
            note="spike" if w.failed_approvals_spike else None,
        )
        for w in weeks
    ]
    total = sum(w.signals.activations for w in weeks)
    return bar_chart(
        bars,
        chart_id=chart_id,
        title="Activation requests per week",
        description=f"{total} activation request(s) over {len(weeks)} week(s), by outcome.",
    )


def failed_approvals_chart(weeks: Sequence[WeekSignals], chart_id: str) -> Markup:
    bars = [
        Bar(
            label=_week_label(w.week_start),
            segments=(Segment("failed approvals", w.signals.approvals.failed_approvals, "bad"),),
            note="spike" if w.failed_approvals_spike else None,
        )
        for w in weeks
    ]
    spikes = sum(w.failed_approvals_spike for w in weeks)
    return bar_chart(
        bars,
        chart_id=chart_id,
        title="Failed or denied approvals per week, against the trailing mean",
        description=f"{spikes} week(s) with a spike of failed approvals.",
        line=[w.failed_approvals_baseline for w in weeks],
        line_label="trailing mean",
        width=520,
    )


def duration_chart(role: RoleSignals, chart_id: str) -> Markup:
    last = len(DURATION_BUCKETS) - 1
    bars = [
        Bar(
            label=DURATION_BUCKETS[i],
            segments=(
                Segment(
                    "at the maximum" if i == last else "below the maximum (share of it)",
                    count,
                    "warn" if i == last else "info",
                ),
            ),
        )
        for i, count in enumerate(role.totals.duration.buckets)
    ]
    return bar_chart(
        bars,
        chart_id=chart_id,
        title=f"Requested duration against the maximum: {role.role_name}",
        description=role.totals.duration.reading_text,
        width=420,
        height=200,
    )


def tickets_chart(roles: Sequence[RoleSignals], chart_id: str) -> Markup:
    bars = [
        Bar(
            label=r.role_name,
            segments=(
                Segment(
                    "with a ticket",
                    r.totals.activations - r.totals.tickets.without_ticket,
                    "ok",
                ),
                Segment("without a ticket", r.totals.tickets.without_ticket, "warn"),
            ),
        )
        for r in roles
    ]
    return bar_chart(
        bars,
        chart_id=chart_id,
        title="Activations with and without a ticket reference, per role",
        description=f"{len(roles)} role(s) activated in the period.",
        width=520,
    )


# --- the page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleView:
    signals: RoleSignals
    chart: Markup


@dataclass(frozen=True)
class MonitoringView:
    report: ActivationReport
    drift: DriftReport
    weekly_chart: Markup
    failed_chart: Markup
    tickets_chart: Markup | None
    roles: tuple[RoleView, ...]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def signals(self) -> SignalReport:
        return self.report.signals


def build_view(
    report: ActivationReport, drift: DriftReport, errors: dict[str, str] | None = None
) -> MonitoringView:
    signals = report.signals
    return MonitoringView(
        report=report,
        drift=drift,
        weekly_chart=weekly_activity_chart(signals.weeks, "weekly"),
        failed_chart=failed_approvals_chart(signals.weeks, "failed"),
        tickets_chart=tickets_chart(signals.roles, "tickets") if signals.roles else None,
        roles=tuple(
            RoleView(role, duration_chart(role, f"duration-{index}"))
            for index, role in enumerate(signals.roles)
        ),
        errors=errors or {},
    )


def _page_url(request: Request, tenant_id: str) -> str:
    return str(request.url_for("tenant_monitoring", tenant_id=tenant_id).path)


@router.get("/tenants/{tenant_id}/monitoring", name="tenant_monitoring")
def monitoring_page(
    request: Request,
    tenant_id: str,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireViewer,
    period: Annotated[str, Query(max_length=16)] = DEFAULT_PERIOD,
    role: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    now, settings = ctx.clock.now(), ctx.settings.monitoring
    errors: dict[str, str] = {}
    with db.reading() as session:
        tenant = tenants.get_tenant(session, tenant_id)
        try:
            report = activation_report(
                session,
                tenant_id=tenant_id,
                period=period,
                role=role or None,
                now=now,
                settings=settings,
            )
        except InvalidInputError as exc:
            for error in exc.extra.get("errors", []):
                errors[str(error["path"]).removeprefix("query.")] = str(error["message"])
            report = activation_report(session, tenant_id=tenant_id, now=now, settings=settings)
        drift = drift_report(session, tenant_id=tenant_id, now=now, settings=settings)
        jobs = recent_jobs(session, now, tenant_id=tenant_id)
    context: dict[str, Any] = {
        "tenant": tenant,
        "view": build_view(report, drift, errors),
        "periods": PERIODS,
        "period": period,
        "role": role or "",
        "can_operate": caller.role.at_least(Role.operator),
        "jobs": jobs,
        "jobs_running": any(j.running for j in jobs),
        "role_names": {
            f.role_definition_id: role_name(f.role_definition_id) for f in drift.findings
        },
    }
    return render(request, "monitoring/tenant.html", context, status_code=422 if errors else 200)


@router.post("/tenants/{tenant_id}/monitoring/collect", name="tenant_monitoring_collect")
async def collect(
    request: Request,
    tenant_id: str,
    ctx: ContextDep,
    caller: RequireOperator,
    form: CsrfForm,
    runner: JobsDep,
) -> Response:
    """Collect the tenant's PIM activity now, as a job."""
    tenant = await ctx.db.read(lambda session: tenants.get_tenant(session, tenant_id))
    settings = ctx.settings.monitoring

    async def work(progress: JobProgress) -> dict[str, Any]:
        progress("collecting")
        try:
            result = await collect_now(runner.ectx, tenant, settings)
        except CollectionError as exc:
            raise UnavailableError(str(exc)) from None
        if result is None:
            raise ConflictError(ANOTHER_WORKER)
        return {
            "requests_new": result.requests_new,
            "requests_updated": result.requests_updated,
            "audits_new": result.audits_new,
            "assignments_new": result.assignments_new,
            "assignments_gone": result.assignments_gone,
        }

    try:
        outcome = await run_job(
            runner,
            kind="collect",
            tenant_id=tenant_id,
            plan_id=None,
            actor=caller.actor,
            work=work,
        )
    except ConflictError as exc:
        flash.add(request.session, "warning", "A collection is already running.", exc.detail)
        return RedirectResponse(_page_url(request, tenant_id), status_code=303)
    if outcome.succeeded:
        r = outcome.result
        flash.add(
            request.session,
            "success",
            "Activity collected.",
            f"{r.get('requests_new')} new request(s), {r.get('requests_updated')} updated, "
            f"{r.get('audits_new')} audit record(s), {r.get('assignments_new')} new and "
            f"{r.get('assignments_gone')} removed standing assignment(s).",
        )
    elif outcome.failed and problem_slug(outcome.problem or {}) == "conflict":
        flash.add(
            request.session,
            "warning",
            "Another worker is collecting this tenant's activity right now.",
        )
    elif outcome.failed:
        flash.add(request.session, "error", "Collecting from Graph failed.", outcome.detail)
    else:
        flash.add(
            request.session,
            "info",
            "Collecting the activity in the background.",
            "Progress shows below; the page shows the new activity once it is collected.",
        )
    return RedirectResponse(_page_url(request, tenant_id), status_code=303)
