"""Allowed windows and freezes for automatic progression, evaluated in the tenant's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app.domain.tenant import AutomationSettings

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WindowVerdict:
    open: bool
    reason: str | None = None
    next_open: datetime | None = None


def progression_window(automation: AutomationSettings, now: datetime) -> WindowVerdict:
    """May a due phase start automatically at ``now``? If not, why, and when next."""
    if automation.frozen:
        return WindowVerdict(False, "the tenant is frozen: automatic progression is off")
    if not automation.windows:
        return WindowVerdict(True)
    zone = ZoneInfo(automation.timezone)
    local = now.astimezone(zone)
    for window in automation.windows:
        if _DAYS[local.weekday()] in {d.value for d in window.days} and (
            window.start <= local.time().replace(tzinfo=None) < window.end
        ):
            return WindowVerdict(True)
    upcoming = _next_open(automation, local)
    when = upcoming.strftime("%a %Y-%m-%d %H:%M") + f" {automation.timezone}" if upcoming else None
    return WindowVerdict(
        False,
        f"outside the allowed progression windows; next window opens {when}",
        upcoming.astimezone(now.tzinfo) if upcoming else None,
    )


def _next_open(automation: AutomationSettings, local: datetime) -> datetime | None:
    candidates = []
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        for window in automation.windows:
            if _DAYS[day.weekday()] not in {d.value for d in window.days}:
                continue
            start = datetime.combine(day, window.start, tzinfo=local.tzinfo)
            if start > local:
                candidates.append(start)
    return min(candidates) if candidates else None
