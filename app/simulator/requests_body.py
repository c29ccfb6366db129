"""Parsing a ``unifiedRole{Assignment,Eligibility}ScheduleRequest`` body (reference §5.1/§5.2).

Enum values are matched case-insensitively (doc examples send ``"NoExpiration"``,
``"AfterDuration"``; metadata declares camelCase) and echoed in camelCase as Graph does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.simulator.errors import ACTION_NOT_SUPPORTED, GraphError, bad_request
from app.simulator.ids import is_guid
from app.simulator.timefmt import format_datetime, format_duration, parse_datetime, parse_duration

ACTIONS = (
    "adminAssign",
    "adminUpdate",
    "adminRemove",
    "selfActivate",
    "selfDeactivate",
    "adminExtend",
    "adminRenew",
    "selfExtend",
    "selfRenew",
    "unknownFutureValue",
)
EXPIRATION_TYPES = ("notSpecified", "noExpiration", "afterDateTime", "afterDuration")
WRITABLE = frozenset(
    {
        "action",
        "principalid",
        "roledefinitionid",
        "directoryscopeid",
        "appscopeid",
        "justification",
        "scheduleinfo",
        "ticketinfo",
        "isvalidationonly",
        "customdata",
        "targetscheduleid",
    }
)


@dataclass(frozen=True)
class ParsedRequest:
    action: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str
    justification: str | None
    ticket_number: str | None
    ticket_system: str | None
    is_validation_only: bool
    custom_data: str | None
    start: datetime | None
    expiration_type: str
    end: datetime | None
    duration: timedelta | None
    schedule_sent: bool

    def window(self, now: datetime) -> tuple[datetime, datetime | None]:
        """Effective start (a past start means now, as the doc samples show) and end."""
        start = self.start if self.start and self.start > now else now
        if self.expiration_type == "afterDateTime":
            return start, self.end
        if self.expiration_type == "afterDuration" and self.duration is not None:
            return start, start + self.duration
        return start, None

    def schedule_echo(self, start: datetime) -> dict[str, Any]:
        return {
            "startDateTime": format_datetime(start),
            "recurrence": None,
            "expiration": {
                "type": self.expiration_type,
                "endDateTime": format_datetime(self.end) if self.end else None,
                "duration": format_duration(self.duration) if self.duration else None,
            },
        }


def _canonical(value: object, allowed: tuple[str, ...], field: str) -> str:
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise bad_request(
        f"Invalid value {value!r} for '{field}'; expected one of {', '.join(allowed)}."
    )


def _lookup(body: dict[str, Any], name: str) -> Any:
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return None


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = _lookup(body, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string.")
    return value


def _guid(body: dict[str, Any], name: str) -> str:
    value = _lookup(body, name)
    if value is None or value == "":
        raise bad_request(f"The property '{name}' is required.")
    if not isinstance(value, str) or not is_guid(value):
        raise bad_request(f"'{name}' must be a GUID; got {value!r}.")
    return value.lower()


def parse(body: object) -> ParsedRequest:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for key in body:
        if not key.startswith("@") and key.lower() not in WRITABLE:
            raise bad_request(
                f"The property '{key}' does not exist on type "
                "'microsoft.graph.unifiedRoleScheduleRequest' or cannot be set."
            )
    raw_action = _lookup(body, "action")
    if raw_action is None:
        raise bad_request("The property 'action' is required.")
    action = _canonical(raw_action, ACTIONS, "action")
    if action == "unknownFutureValue":
        raise bad_request("'unknownFutureValue' is not a valid action.")
    principal_id = _guid(body, "principalId")
    role_id = _guid(body, "roleDefinitionId")
    scope = _optional_str(body, "directoryScopeId")
    app_scope = _optional_str(body, "appScopeId")
    if scope is None:
        if app_scope is not None:
            raise GraphError(
                400,
                ACTION_NOT_SUPPORTED,
                "App-specific scopes (appScopeId) are not modelled by the simulated tenant; use "
                "directoryScopeId.",
            )
        raise bad_request("Either 'directoryScopeId' or 'appScopeId' is required.")
    if not scope.startswith("/"):
        raise bad_request(f"'directoryScopeId' must start with '/'; got {scope!r}.")
    validation_only = _lookup(body, "isValidationOnly")
    if validation_only is not None and not isinstance(validation_only, bool):
        raise bad_request("'isValidationOnly' must be a boolean.")
    ticket = _lookup(body, "ticketInfo")
    if ticket is not None and not isinstance(ticket, dict):
        raise bad_request("'ticketInfo' must be an object.")
    ticket = ticket or {}
    ticket_number = _optional_str(ticket, "ticketNumber")
    ticket_system = _optional_str(ticket, "ticketSystem")
    start, expiration_type, end, duration, sent = _parse_schedule(_lookup(body, "scheduleInfo"))
    justification = _optional_str(body, "justification")
    return ParsedRequest(
        action=action,
        principal_id=principal_id,
        role_definition_id=role_id,
        directory_scope_id=scope,
        justification=justification,
        ticket_number=ticket_number,
        ticket_system=ticket_system,
        is_validation_only=bool(validation_only),
        custom_data=_optional_str(body, "customData"),
        start=start,
        expiration_type=expiration_type,
        end=end,
        duration=duration,
        schedule_sent=sent,
    )


def _parse_schedule(
    info: object,
) -> tuple[datetime | None, str, datetime | None, timedelta | None, bool]:
    if info is None:
        return None, "notSpecified", None, None, False
    if not isinstance(info, dict):
        raise bad_request("'scheduleInfo' must be an object.")
    if _lookup(info, "recurrence") is not None:
        raise bad_request("scheduleInfo.recurrence is not supported for role assignments.")
    start = None
    raw_start = _lookup(info, "startDateTime")
    if raw_start is not None:
        try:
            start = parse_datetime(str(raw_start))
        except ValueError as exc:
            raise bad_request(f"scheduleInfo.startDateTime: {exc}") from None
    expiration = _lookup(info, "expiration")
    if expiration is None:
        return start, "notSpecified", None, None, True
    if not isinstance(expiration, dict):
        raise bad_request("scheduleInfo.expiration must be an object.")
    raw_end = _lookup(expiration, "endDateTime")
    raw_duration = _lookup(expiration, "duration")
    end = duration = None
    if raw_end is not None:
        try:
            end = parse_datetime(str(raw_end))
        except ValueError as exc:
            raise bad_request(f"scheduleInfo.expiration.endDateTime: {exc}") from None
    if raw_duration is not None:
        try:
            duration = parse_duration(str(raw_duration))
        except ValueError as exc:
            raise bad_request(f"scheduleInfo.expiration.duration: {exc}") from None
        if duration <= timedelta(0):
            raise bad_request("scheduleInfo.expiration.duration must be positive.")
    raw_type = _lookup(expiration, "type")
    if raw_type is None:
        kind = "afterDateTime" if end else "afterDuration" if duration else "notSpecified"
    else:
        kind = _canonical(raw_type, EXPIRATION_TYPES, "scheduleInfo.expiration.type")
    if kind == "afterDateTime" and end is None:
        raise bad_request(
            "expiration type afterDateTime needs scheduleInfo.expiration.endDateTime."
        )
    if kind == "afterDuration" and duration is None:
        raise bad_request("expiration type afterDuration needs scheduleInfo.expiration.duration.")
    if kind in {"noExpiration", "notSpecified"}:
        end = duration = None
    elif kind == "afterDateTime":
        duration = None
    else:
        end = None
    return start, kind, end, duration, True
