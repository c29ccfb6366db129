"""Jinja2 over the package's ``templates/`` folder: autoescaped, strict, with display filters.

Templates only format; everything they show is computed in Python (``app/ui/views.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from app.services.context import AppContext
from app.ui import csrf, flash
from app.ui.jobs import REFRESH_SECONDS

# State -> tone; the CSS gives each tone a colour, and the badge always shows the state's name
# too, so colour is never the only signal.
_TONES: Mapping[str, str] = {
    "draft": "neutral",
    "pending": "neutral",
    "cancelled": "muted",
    "scheduled": "info",
    "due": "info",
    "running": "active",
    "paused": "warn",
    "awaiting_gate": "warn",
    "rolling_back": "warn",
    "completed": "ok",
    "applied": "ok",
    "failed": "bad",
    "succeeded": "ok",
    "rolled_back": "undone",
    "reverted": "undone",
    "drift": "warn",
    "not_needed": "muted",
    "pass": "ok",
    "fail": "bad",
    "not_applicable": "muted",
}


def tone(state: str | None) -> str:
    return _TONES.get(state or "", "neutral")


def humanize(value: str | None) -> str:
    """``awaiting_gate`` -> ``awaiting gate``; identifiers shown as words."""
    return (value or "").replace("_", " ")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        hours, rest = divmod(int(seconds // 60), 60)
        return f"{hours} h {rest} min" if rest and hours < 10 else f"{hours} h"
    return f"{int(seconds // 86400)} days"


def reltime(value: datetime | None, now: datetime) -> str:
    """``in 20 s`` / ``3 min ago`` relative to ``now`` (the app clock, passed by the page)."""
    if value is None:
        return "—"
    delta = (value - now).total_seconds()
    if abs(delta) < 2:
        return "now"
    return f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago"


def duration(value: timedelta | float | int | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds == 0:
        return "immediately"
    return _span(seconds)


def utc(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("app", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        tone=tone, humanize=humanize, reltime=reltime, duration=duration, utc=utc, iso=iso
    )
    env.globals["url_for"] = _url_for
    env.globals["jobs_refresh_seconds"] = REFRESH_SECONDS
    return env


@jinja2.pass_context
def _url_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    """A path (no scheme or host), so links work unchanged behind a TLS-terminating proxy.

    ``query`` becomes the query string; ``None`` values in it are left out.
    """
    request: Request = context["request"]
    query: Mapping[str, Any] = params.pop("query", None) or {}
    url = request.url_for(name, **{k: str(v) for k, v in params.items()})
    path = url.path
    pairs = {k: v for k, v in query.items() if v is not None and v != ""}
    if pairs:
        from urllib.parse import urlencode

        path += "?" + urlencode(pairs)
    return path


templates = Jinja2Templates(env=_environment())


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    touch_session: bool = True,
) -> Response:
    """Render a page (or a ``partials/`` fragment) with what every template may use.

    ``touch_session=False`` leaves the session cookie alone (no CSRF token, no flash).
    """
    is_partial = template.startswith("partials/")
    full: dict[str, Any] = {
        "request": request,
        "caller": getattr(request.state, "caller", None),
        "csrf_token": csrf.ensure_token(request.session) if touch_session else "",
        "csrf_field": csrf.FIELD,
        "section": template.split("/", 1)[0],
        "now": app_context(request).clock.now(),
        # A fragment never consumes the flash: it belongs to the next full page.
        "flashes": flash.pop_all(request.session) if touch_session and not is_partial else [],
    }
    full.update(context or {})
    return templates.TemplateResponse(
        request, template, full, status_code=status_code, headers=dict(headers or {})
    )
