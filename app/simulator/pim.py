"""PIM's request engine: what a POST to ``role{Assignment,Eligibility}ScheduleRequests`` does.

Each action checks what Graph checks (reference §5, domain-facts.md) in this order: the body,
the action, the principal and role, existence (``RoleAssignmentExists`` /
``RoleAssignmentDoesNotExist``), the last-active and five-minute guards, the minimum window, then
the role's policy rules, reported together as ``RoleAssignmentRequestPolicyValidationFailed``.
``isValidationOnly`` stops after the checks and stores nothing.

Callers: ``admin*`` requests come from the app-only token, which can never satisfy an MFA
requirement; ``self*`` requests are made as the user named in ``principalId`` (this is a test
double for a delegated token), whose MFA and authentication-context claims come from the
``x-sim-mfa`` / ``x-sim-acrs`` request headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.simulator import audit, errors, lifecycle, policies
from app.simulator.audit import Initiator
from app.simulator.catalog import LAST_ACTIVE_PROTECTED
from app.simulator.errors import GraphError, bad_request, policy_failed
from app.simulator.requests_body import ParsedRequest, parse
from app.simulator.selfservice import SelfService
from app.simulator.state import (
    Group,
    RequestKind,
    Schedule,
    ScheduleRequest,
    ServicePrincipal,
    SimState,
    User,
)
from app.simulator.timefmt import format_datetime

MIN_WINDOW = timedelta(minutes=5)
ADMIN_ACTIONS = ("adminAssign", "adminUpdate", "adminRemove", "adminExtend", "adminRenew")
SELF_ACTIONS = ("selfActivate", "selfDeactivate")


@dataclass(frozen=True)
class Caller:
    """Claims of the token behind a self-service request (see the module docstring)."""

    mfa: bool = False
    acrs: frozenset[str] = frozenset()


def _created_by(state: SimState, user_id: str | None) -> dict[str, Any]:
    if user_id:
        return {"application": None, "device": None, "user": {"displayName": None, "id": user_id}}
    return {
        "application": {"displayName": state.caller_app_name, "id": state.caller_app_id},
        "device": None,
        "user": None,
    }


class RequestEngine:
    """Turns one schedule request into state changes, audits and timeline entries."""

    def __init__(self, state: SimState, *, min_change_interval: timedelta) -> None:
        self.state = state
        self.min_change = min_change_interval

    # --- entry point ------------------------------------------------------------------------
    def submit(
        self, kind: RequestKind, body: object, *, now: datetime, caller: Caller | None = None
    ) -> ScheduleRequest:
        parsed = parse(body)
        allowed = ADMIN_ACTIONS + (SELF_ACTIONS if kind == "assignment" else ())
        if parsed.action not in allowed:
            raise GraphError(
                400,
                errors.ACTION_NOT_SUPPORTED,
                f"The action '{parsed.action}' is not supported on "
                f"role{'Assignment' if kind == 'assignment' else 'Eligibility'}ScheduleRequests "
                "by the simulated tenant.",
            )
        if parsed.role_definition_id not in self.state.roles:
            raise bad_request(
                f"The role definition '{parsed.role_definition_id}' does not exist.",
                errors.ROLE_NOT_FOUND,
            )
        caller = caller or Caller()
        if parsed.action == "adminAssign":
            return self._admin_assign(kind, parsed, now)
        if parsed.action == "adminRemove":
            return self._admin_remove(kind, parsed, now)
        if parsed.action in {"adminUpdate", "adminExtend", "adminRenew"}:
            return self._admin_update(kind, parsed, now)
        if parsed.action == "selfActivate":
            return SelfService(self).activate(parsed, now, caller)
        return SelfService(self).deactivate(parsed, now)

    # --- shared checks -----------------------------------------------------------------------
    def _principal(
        self, parsed: ParsedRequest, kind: RequestKind
    ) -> User | Group | ServicePrincipal:
        principal = self.state.principal(parsed.principal_id)
        if principal is None:
            raise bad_request(
                f"The principal '{parsed.principal_id}' does not exist in the directory.",
                errors.PRINCIPAL_NOT_FOUND,
            )
        if isinstance(principal, Group) and not principal.is_assignable_to_role:
            raise bad_request(
                f"The group '{principal.display_name}' is not role-assignable "
                "(isAssignableToRole is false).",
                errors.GROUP_NOT_ROLE_ASSIGNABLE,
            )
        if isinstance(principal, ServicePrincipal) and kind == "eligibility":
            raise bad_request(
                "Service principals cannot be eligible for directory roles; assign them an "
                "active (time-bound) assignment instead.",
                errors.SERVICE_PRINCIPAL_NOT_ELIGIBLE,
            )
        return principal

    def check_window(self, kind: RequestKind, start: datetime, end: datetime | None) -> None:
        if end is not None and end - start < MIN_WINDOW:
            if kind == "assignment":
                raise bad_request(
                    "The Active duration is too short. Minimum required is 5 minutes.",
                    errors.ACTIVE_DURATION_TOO_SHORT,
                )
            raise bad_request(
                "The Eligible duration is too short. Minimum required is 5 minutes.",
                errors.ELIGIBLE_DURATION_TOO_SHORT,
            )

    def check_recent_change(self, schedule: Schedule, now: datetime) -> None:
        if now - schedule.last_change_at < self.min_change:
            minutes = self.min_change.total_seconds() / 60
            raise bad_request(
                f"The role assignment was changed at {format_datetime(schedule.last_change_at)}; "
                f"it cannot be updated or removed within {minutes:g} minutes of its last change.",
                errors.CHANGE_TOO_SOON,
            )

    def _check_last_active(self, schedule: Schedule, now: datetime) -> None:
        if schedule.kind != "active" or schedule.role_definition_id not in LAST_ACTIVE_PROTECTED:
            return
        others = [
            s
            for s in self.state.actives.for_role(schedule.role_definition_id)
            if s.id != schedule.id
            and s.assignment_type == "Assigned"
            and s.directory_scope_id == "/"
            and s.effective(now)
        ]
        if not others:
            name = self.state.roles[schedule.role_definition_id].display_name
            raise bad_request(
                f"Removing the last active assignment of the {name} role is not allowed.",
                errors.LAST_ACTIVE_ASSIGNMENT,
            )

    def _admin_policy(
        self, kind: RequestKind, parsed: ParsedRequest, start: datetime, end: datetime | None
    ) -> list[str]:
        policy = self.state.policy_for_role(parsed.role_definition_id)
        level = "Eligibility" if kind == "eligibility" else "Assignment"
        failures: list[str] = []
        required, maximum = policies.expiration(policy, f"Expiration_Admin_{level}")
        # maximumDuration only binds when expiry is required: "Allow permanent" greys it out.
        if required and (end is None or (maximum is not None and end - start > maximum)):
            failures.append("ExpirationRule")
        rules = policies.enabled_rules(policy, f"Enablement_Admin_{level}")
        if "MultiFactorAuthentication" in rules:
            failures.append("MfaRule")  # an app-only token has no MFA claim
        if "Justification" in rules and not parsed.justification:
            failures.append("JustificationRule")
        if "Ticketing" in rules and not parsed.ticket_number:
            failures.append("TicketingRule")
        return failures

    def new_request(
        self,
        kind: RequestKind,
        parsed: ParsedRequest,
        *,
        now: datetime,
        status: str,
        user_id: str | None = None,
        schedule_info: dict[str, Any] | None = None,
        target: str | None = None,
        completed: datetime | None = None,
    ) -> ScheduleRequest:
        request_id = self.state.ids.guid()
        request = ScheduleRequest(
            id=request_id,
            kind=kind,
            action=parsed.action,
            principal_id=parsed.principal_id,
            role_definition_id=parsed.role_definition_id,
            directory_scope_id=parsed.directory_scope_id,
            app_scope_id=None,
            status=status,
            created_at=now,
            created_by=_created_by(self.state, user_id),
            justification=parsed.justification,
            schedule_info=schedule_info,
            ticket_number=parsed.ticket_number,
            ticket_system=parsed.ticket_system,
            is_validation_only=parsed.is_validation_only,
            target_schedule_id=request_id if target == "self" else target,
            completed_at=completed,
            custom_data=parsed.custom_data,
        )
        if not parsed.is_validation_only:
            self.state.add_request(request)
        return request

    def audit_request(
        self,
        activity: str,
        operation: str,
        initiator: Initiator,
        parsed: ParsedRequest,
        request: ScheduleRequest,
        at: datetime,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        audit.record_role_change(
            self.state,
            at=at,
            activity=activity,
            operation_type=operation,
            initiator=initiator,
            principal_id=parsed.principal_id,
            role_id=parsed.role_definition_id,
            request_id=request.id,
            justification=parsed.justification,
            ticket_number=parsed.ticket_number,
            ticket_system=parsed.ticket_system,
            start=start,
            end=end,
        )

    # --- admin actions ----------------------------------------------------------------------
    def _admin_assign(
        self, kind: RequestKind, parsed: ParsedRequest, now: datetime, *, renew: bool = False
    ) -> ScheduleRequest:
        self._principal(parsed, kind)
        store = self.state.store("active" if kind == "assignment" else "eligible")
        key = (parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id)
        if store.find(*key) is not None:
            raise bad_request("The Role assignment already exists.", errors.ROLE_ASSIGNMENT_EXISTS)
        start, end = parsed.window(now)
        self.check_window(kind, start, end)
        failures = self._admin_policy(kind, parsed, start, end)
        if failures:
            raise policy_failed(failures)
        if parsed.is_validation_only:
            return self.new_request(
                kind, parsed, now=now, status="Granted", schedule_info=parsed.schedule_echo(start)
            )
        status = "Granted" if start > now else "Provisioned"
        request = self.new_request(
            kind,
            parsed,
            now=now,
            status=status,
            schedule_info=parsed.schedule_echo(start),
            target="self",
            completed=start,
        )
        schedule = Schedule(
            id=request.id,
            kind=store.kind,
            principal_id=parsed.principal_id,
            role_definition_id=parsed.role_definition_id,
            directory_scope_id=parsed.directory_scope_id,
            assigned_at=start,
            last_change_at=now,
            start=start,
            end=end,
            created_using=request.id,
            created_at=now,
        )
        lifecycle.store_schedule(self.state, schedule, now=now, cause="request")
        noun = "eligible member" if kind == "eligibility" else "member"
        span = "renew" if renew else "permanent" if end is None else "timebound"
        app = Initiator("app")
        self.audit_request(
            f"Add {noun} to role in PIM requested ({span})",
            "Add",
            app,
            parsed,
            request,
            now,
            start,
            end,
        )
        if start <= now:
            span = "permanent" if end is None else "timebound"
            self.audit_request(
                f"Add {noun} to role in PIM completed ({span})",
                "Add",
                app,
                parsed,
                request,
                now,
                start,
                end,
            )
        return request

    def _admin_remove(
        self, kind: RequestKind, parsed: ParsedRequest, now: datetime
    ) -> ScheduleRequest:
        store = self.state.store("active" if kind == "assignment" else "eligible")
        schedule = store.find(
            parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id
        )
        if schedule is None:
            raise bad_request(
                "The role assignment to remove does not exist.",
                errors.ROLE_ASSIGNMENT_DOES_NOT_EXIST,
            )
        self._check_last_active(schedule, now)
        self.check_recent_change(schedule, now)
        # adminRemove answers as the doc sample shows: Revoked, no schedule, no target, no
        # completedDateTime.
        request = self.new_request(kind, parsed, now=now, status="Revoked")
        if parsed.is_validation_only:
            return request
        lifecycle.remove_schedule(self.state, schedule, at=now, cause="request")
        app = Initiator("app")
        if schedule.outside_pim and schedule.end is None:
            self.audit_request(
                "Remove permanent direct role assignment", "Delete", app, parsed, request, now
            )
            return request
        noun = "eligible member" if kind == "eligibility" else "member"
        span = "permanent" if schedule.end is None else "timebound"
        for phase in ("requested", "completed"):
            self.audit_request(
                f"Remove {noun} from role in PIM {phase} ({span})",
                "Delete",
                app,
                parsed,
                request,
                now,
            )
        return request

    def _admin_update(
        self, kind: RequestKind, parsed: ParsedRequest, now: datetime
    ) -> ScheduleRequest:
        store = self.state.store("active" if kind == "assignment" else "eligible")
        schedule = store.find(
            parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id
        )
        if schedule is None:
            if parsed.action == "adminRenew":
                return self._admin_assign(kind, parsed, now, renew=True)
            raise bad_request(
                "The role assignment to update does not exist.",
                errors.ROLE_ASSIGNMENT_DOES_NOT_EXIST,
            )
        if not parsed.schedule_sent or parsed.expiration_type == "notSpecified":
            raise bad_request(f"{parsed.action} needs scheduleInfo with an expiration.")
        self.check_recent_change(schedule, now)
        started = lifecycle.started(schedule, now)
        start = (
            parsed.start
            if parsed.start and parsed.start > now
            else (schedule.start if started else now)
        )
        _, end = parsed.window(now)
        if parsed.expiration_type == "afterDuration" and parsed.duration is not None:
            end = (start or now) + parsed.duration
        if parsed.action == "adminExtend":
            if schedule.end is None:
                raise bad_request("The assignment is permanent; there is nothing to extend.")
            if end is None or end <= schedule.end:
                raise bad_request("adminExtend must move the end of the assignment later.")
        self.check_window(kind, start or now, end)
        failures = self._admin_policy(kind, parsed, start or now, end)
        if failures:
            raise policy_failed(failures)
        request = self.new_request(
            kind,
            parsed,
            now=now,
            status="Provisioned",
            schedule_info=parsed.schedule_echo(start or now),
            target=schedule.id,
            completed=now,
        )
        if parsed.is_validation_only:
            return request
        lifecycle.reschedule(self.state, schedule, start=start, end=end, now=now)
        noun = "eligible member" if kind == "eligibility" else "member"
        app = Initiator("app")
        if parsed.action == "adminUpdate":
            self.audit_request(
                "Process role update request", "Update", app, parsed, request, now, start, end
            )
        else:
            label = "extend" if parsed.action == "adminExtend" else "renew"
            self.audit_request(
                f"Update {noun} in PIM requested ({label})",
                "Update",
                app,
                parsed,
                request,
                now,
                start,
                end,
            )
            self.audit_request(
                "Update member in PIM approved by admin (extend/renew)",
                "Update",
                app,
                parsed,
                request,
                now,
                start,
                end,
            )
        return request

    # --- cancel -------------------------------------------------------------------------------
    def cancel(self, kind: RequestKind, request_id: str, *, now: datetime) -> None:
        request = self.state.requests.get(request_id)
        if request is None or request.kind != kind:
            raise errors.not_found(f"The request '{request_id}' does not exist.")
        if request.status != "Granted":
            raise bad_request(
                f"Only requests in Granted status can be canceled; this one is {request.status}.",
                errors.REQUEST_NOT_CANCELABLE,
            )
        store = self.state.store("active" if kind == "assignment" else "eligible")
        schedule = store.get(request.target_schedule_id or "")
        if schedule is not None:
            lifecycle.remove_schedule(self.state, schedule, at=now, cause="canceled")
        request.status = "Canceled"
        if request.action == "selfActivate":
            activity = "Add member to role canceled (PIM activation)"
            initiator = Initiator("user", request.principal_id)
        else:
            noun = "eligible member" if kind == "eligibility" else "member"
            span = "permanent" if schedule is None or schedule.end is None else "timebound"
            activity = f"Add {noun} to role in PIM canceled ({span})"
            initiator = Initiator("app")
        audit.record_role_change(
            self.state,
            at=now,
            activity=activity,
            operation_type="Delete",
            initiator=initiator,
            principal_id=request.principal_id,
            role_id=request.role_definition_id,
            request_id=request.id,
        )

    def decide(
        self, request_id: str, *, approve: bool, approver_id: str, now: datetime
    ) -> ScheduleRequest:
        """Approve or deny a PendingApproval activation (the approver acts in the portal)."""
        return SelfService(self).decide(
            request_id, approve=approve, approver_id=approver_id, now=now
        )
