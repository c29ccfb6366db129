"""ISO 8601 date-times and durations the way Graph writes and reads them.

Graph's OpenAPI constrains date-times to ``YYYY-MM-DDThh:mm:ss[.f{1,12}](Z|±hh:mm)`` and
durations to ``-?P[nD][T[nH][nM][n[.n]S]]`` (no years, months or weeks), so that is what we
accept and emit (graph-openapi/Identity.Governance.yml, ``microsoft.graph.expirationPattern``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DATETIME = re.compile(
    r"^(?P<date>\d{4,}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,12}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?$"
)
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_datetime(text: str) -> datetime:
    """Parse a Graph date-time; a missing offset means UTC (Graph's own convention)."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    frac = (match["frac"] or "0")[:6].ljust(6, "0")
    tz = match["tz"] or "Z"
    tz = "+00:00" if tz == "Z" else tz
    parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{tz}")
    return parsed.astimezone(UTC)


def parse_date_or_datetime(text: str) -> datetime:
    """Access-review ``startDate`` values come as a date or as a date-time."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    return parse_datetime(text)


def format_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in {"P", "PT", "-P"} or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration in days/hours/minutes/seconds")
    delta = timedelta(
        days=int(match["days"] or 0),
        hours=int(match["hours"] or 0),
        minutes=int(match["minutes"] or 0),
        seconds=float(match["seconds"] or 0),
    )
    return -delta if match["sign"] else delta


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=8)`` -> ``PT8H``; whole days stay days (``P365D``), as Graph writes."""
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P"
    if days:
        text += f"{days}D"
    if hours or minutes or seconds or not days:
        text += "T"
        if hours:
            text += f"{hours}H"
        if minutes:
            text += f"{minutes}M"
        if seconds or not (hours or minutes):
            text += f"{seconds}S"
    return text


def http_date(value: datetime) -> str:
    """``innerError.date`` as Graph writes it: seconds precision, no offset."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
