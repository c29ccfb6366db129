"""Self-service PIM: ``selfActivate``, ``selfDeactivate`` and approval decisions.

The activating user is the ``principalId`` of the request (a test double for a delegated token);
MFA and authentication-context claims come from :class:`~app.simulator.pim.Caller`. The role's
end-user rules apply: activation maximum, MFA/justification/ticket on activation, approval.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from app.simulator import audit, errors, lifecycle, policies
from app.simulator.audit import Initiator
from app.simulator.errors import GraphError, bad_request, policy_failed
from app.simulator.requests_body import ParsedRequest
from app.simulator.state import Schedule, ScheduleRequest, User
from app.simulator.timefmt import format_datetime

if TYPE_CHECKING:
    from app.simulator.pim import Caller, RequestEngine


class SelfService:
    """The end-user half of :class:`~app.simulator.pim.RequestEngine`."""

    def __init__(self, engine: RequestEngine) -> None:
        self.engine = engine

    def eligibility_for(
        self, user_id: str, role_id: str, scope: str, at: datetime
    ) -> Schedule | None:
        direct = self.engine.state.eligibles.find(user_id, role_id, scope)
        if direct is not None and direct.effective(at):
            return direct
        for group in self.engine.state.groups_containing(user_id):
            via_group = self.engine.state.eligibles.find(group.id, role_id, scope)
            if via_group is not None and via_group.effective(at):
                return via_group
        return None

    def activate(self, parsed: ParsedRequest, now: datetime, caller: Caller) -> ScheduleRequest:
        principal = self.engine.state.principal(parsed.principal_id)
        if not isinstance(principal, User):
            raise bad_request(
                "selfActivate is made by a signed-in user; principalId must be a user."
            )
        key = (parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id)
        if self.engine.state.actives.find(*key) is not None:
            raise bad_request("The Role assignment already exists.", errors.ROLE_ASSIGNMENT_EXISTS)
        start, end = parsed.window(now)
        self.engine.check_window("assignment", start, end)
        policy = self.engine.state.policy_for_role(parsed.role_definition_id)
        acrs_enabled, claim = policies.auth_context(policy)
        if acrs_enabled and claim not in caller.acrs:
            raise GraphError(
                400,
                errors.ACRS_VALIDATION_FAILED,
                "The request requires the Conditional Access authentication context "
                f"'{claim}'; sign in again satisfying it.",
            )
        failures: list[str] = []
        eligibility = self.eligibility_for(
            parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id, start
        )
        if eligibility is None:
            failures.append("EligibilityRule")
        required, maximum = policies.expiration(policy, "Expiration_EndUser_Assignment")
        if (end is None and required) or (
            end is not None and maximum is not None and end - start > maximum
        ):
            failures.append("ExpirationRule")
        rules = policies.enabled_rules(policy, "Enablement_EndUser_Assignment")
        if "MultiFactorAuthentication" in rules and not caller.mfa:
            failures.append("MfaRule")
        approval = policies.approval_required(policy)
        needs_reason = "Justification" in rules or (
            approval and policies.approval_setting(policy).get("isRequestorJustificationRequired")
        )
        if needs_reason and not parsed.justification:
            failures.append("JustificationRule")
        if "Ticketing" in rules and not parsed.ticket_number:
            failures.append("TicketingRule")
        if failures:
            raise policy_failed(failures)
        user = parsed.principal_id
        if parsed.is_validation_only:
            return self.engine.new_request(
                "assignment",
                parsed,
                now=now,
                status="Granted",
                user_id=user,
                schedule_info=parsed.schedule_echo(start),
            )
        me = Initiator("user", user)
        if approval:
            request = self.engine.new_request(
                "assignment",
                parsed,
                now=now,
                status="PendingApproval",
                user_id=user,
                schedule_info=parsed.schedule_echo(start),
            )
            request.approval_id = self.engine.state.ids.guid()
            request.pending_start, request.pending_end = start, end
            self.engine.audit_request(
                "Add member to role requested (PIM activation)",
                "Add",
                me,
                parsed,
                request,
                now,
                start,
                end,
            )
            self.engine.audit_request(
                "Add member to role approval requested (PIM activation)",
                "Add",
                me,
                parsed,
                request,
                now,
                start,
                end,
            )
            return request
        request = self.engine.new_request(
            "assignment",
            parsed,
            now=now,
            status="Granted" if start > now else "Provisioned",
            user_id=user,
            schedule_info=parsed.schedule_echo(start),
            target="self",
            completed=start,
        )
        self.engine.audit_request(
            "Add member to role requested (PIM activation)",
            "Add",
            me,
            parsed,
            request,
            now,
            start,
            end,
        )
        assert eligibility is not None
        self._start_activation(request, eligibility, start, end, now)
        return request

    def _start_activation(
        self,
        request: ScheduleRequest,
        eligibility: Schedule,
        start: datetime,
        end: datetime | None,
        now: datetime,
    ) -> None:
        schedule = Schedule(
            id=request.id,
            kind="active",
            principal_id=request.principal_id,
            role_definition_id=request.role_definition_id,
            directory_scope_id=request.directory_scope_id or "/",
            assigned_at=start,
            last_change_at=now,
            start=start,
            end=end,
            assignment_type="Activated",
            created_using=request.id,
            created_at=now,
            activated_using=eligibility.id,
        )
        lifecycle.store_schedule(self.engine.state, schedule, now=now, cause="activation")
        if start <= now:
            audit.record_role_change(
                self.engine.state,
                at=now,
                activity="Add member to role completed (PIM activation)",
                operation_type="Add",
                initiator=Initiator("user", request.principal_id),
                principal_id=request.principal_id,
                role_id=request.role_definition_id,
                request_id=request.id,
                justification=request.justification,
                ticket_number=request.ticket_number,
                ticket_system=request.ticket_system,
                start=start,
                end=end,
            )

    def deactivate(self, parsed: ParsedRequest, now: datetime) -> ScheduleRequest:
        schedule = self.engine.state.actives.find(
            parsed.principal_id, parsed.role_definition_id, parsed.directory_scope_id
        )
        if schedule is None or schedule.assignment_type != "Activated":
            raise bad_request(
                "There is no active activation of this role to deactivate.",
                errors.ROLE_ASSIGNMENT_DOES_NOT_EXIST,
            )
        self.engine.check_recent_change(schedule, now)
        request = self.engine.new_request(
            "assignment", parsed, now=now, status="Revoked", user_id=parsed.principal_id
        )
        if parsed.is_validation_only:
            return request
        lifecycle.remove_schedule(self.engine.state, schedule, at=now, cause="deactivation")
        me = Initiator("user", parsed.principal_id)
        self.engine.audit_request(
            "Remove member from role requested (PIM deactivate)", "Delete", me, parsed, request, now
        )
        self.engine.audit_request(
            "Remove member from role completed (PIM deactivate)", "Delete", me, parsed, request, now
        )
        return request

    # --- cancel and approvals ---------------------------------------------------------------
    def decide(
        self, request_id: str, *, approve: bool, approver_id: str, now: datetime
    ) -> ScheduleRequest:
        """Approve or deny a PendingApproval activation (the approver acts in the portal)."""
        request = self.engine.state.requests.get(request_id)
        if request is None:
            raise errors.not_found(f"The request '{request_id}' does not exist.")
        if request.status != "PendingApproval":
            raise GraphError(
                409, "RequestNotPending", f"The request is {request.status}, not PendingApproval."
            )
        if approver_id not in self.engine.state.users:
            raise bad_request(f"The approver '{approver_id}' is not a user of the tenant.")
        if approver_id == request.principal_id:
            raise bad_request("Requestors cannot approve their own activation.")
        policy = self.engine.state.policy_for_role(request.role_definition_id)
        allowed = policies.primary_approver_ids(self.engine.state, policy)
        if allowed is not None and approver_id not in allowed:
            raise GraphError(
                403, errors.AUTHORIZATION_DENIED, "This user is not an approver of the role."
            )
        request.decided_by, request.decided_at = approver_id, now
        approver = Initiator("user", approver_id)
        if not approve:
            request.status = "Denied"
            request.completed_at = now
            self._decision_audit(request, "denied", approver, now)
            return request
        assert request.pending_start is not None
        start = max(request.pending_start, now)
        end = start + (request.pending_end - request.pending_start) if request.pending_end else None
        eligibility = self.eligibility_for(
            request.principal_id,
            request.role_definition_id,
            request.directory_scope_id or "/",
            start,
        )
        key = (request.principal_id, request.role_definition_id, request.directory_scope_id or "/")
        if eligibility is None or self.engine.state.actives.find(*key) is not None:
            request.status = "Failed"
            request.completed_at = now
            return request
        request.status = "Granted" if start > now else "Provisioned"
        request.target_schedule_id = request.id
        request.completed_at = start
        if request.schedule_info is not None:
            request.schedule_info = {
                **request.schedule_info,
                "startDateTime": format_datetime(start),
            }
        self._decision_audit(request, "approved", approver, now)
        self._start_activation(request, eligibility, start, end, now)
        return request

    def _decision_audit(
        self, request: ScheduleRequest, outcome: str, approver: Initiator, at: datetime
    ) -> None:
        audit.record_role_change(
            self.engine.state,
            at=at,
            activity=f"Add member to role request {outcome} (PIM activation)",
            operation_type="Update",
            initiator=approver,
            principal_id=request.principal_id,
            role_id=request.role_definition_id,
            request_id=request.id,
            justification=request.justification,
            ticket_number=request.ticket_number,
            ticket_system=request.ticket_system,
        )
