"""Self-service activation: policy enforcement, approvals, expiry and deactivation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.simulator.timefmt import format_datetime
from tests.simulator.conftest import GA, RM, USER_ADMIN, Sim, assign_body, holder, plain_user

MFA = {"x-sim-mfa": "satisfied"}
AUTH_CONTEXT_RULE = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"
EXPIRED = "Remove member from role (PIM activation expired)"


def activation(principal: str, role: str = USER_ADMIN, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "selfActivate",
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": "/",
        "justification": "Resetting a locked-out executive's MFA",
        "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT2H"}},
    }
    body.update(extra)
    return body


async def _eligible(sim: Sim, role: str = USER_ADMIN) -> str:
    principal = plain_user(sim.state)
    assert (await sim.request("eligibility", assign_body(principal, role))).status_code == 201
    sim.clock.advance(60)
    return principal


async def _patch(sim: Sim, role: str, rule: dict[str, Any]) -> None:
    policy_id = sim.state.policy_for_role(role).id
    response = await sim.patch(
        f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules/{rule['id']}", rule
    )
    assert response.status_code == 200, response.text


def _failed(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["error"]["message"])


class TestSelfActivate:
    async def test_activation_creates_an_activated_instance(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        response = await sim.request("assignment", activation(principal), **MFA)
        assert response.status_code == 201
        created = response.json()
        assert created["status"] == "Provisioned"
        assert created["createdBy"]["user"]["id"] == principal
        instances = (
            await sim.get(
                f"{RM}/roleAssignmentScheduleInstances?$filter=principalId eq '{principal}'"
                "&$expand=activatedUsing"
            )
        ).json()["value"]
        (instance,) = instances
        assert instance["assignmentType"] == "Activated"
        assert instance["endDateTime"] == format_datetime(sim.clock.now() + timedelta(hours=2))
        assert instance["activatedUsing"]["principalId"] == principal
        assignments = (
            await sim.get(f"{RM}/roleAssignments?$filter=principalId eq '{principal}'")
        ).json()
        assert [a["roleDefinitionId"] for a in assignments["value"]] == [USER_ADMIN]

    async def test_mfa_is_required_by_default(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        assert _failed(await sim.request("assignment", activation(principal))) == (
            'The following policy rules failed: ["MfaRule"]'
        )

    async def test_justification_is_required_by_default(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        body = activation(principal)
        del body["justification"]
        assert "JustificationRule" in _failed(await sim.request("assignment", body, **MFA))

    async def test_ticket_when_the_rule_demands_it(self, sim: Sim) -> None:
        await _patch(
            sim,
            USER_ADMIN,
            {
                "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
                "id": "Enablement_EndUser_Assignment",
                "enabledRules": ["Justification", "MultiFactorAuthentication", "Ticketing"],
            },
        )
        principal = await _eligible(sim)
        assert "TicketingRule" in _failed(
            await sim.request("assignment", activation(principal), **MFA)
        )
        ticket = {"ticketNumber": "INC0012345", "ticketSystem": "ServiceNow"}
        ok = await sim.request("assignment", activation(principal, ticketInfo=ticket), **MFA)
        assert ok.status_code == 201
        assert ok.json()["ticketInfo"] == ticket

    async def test_duration_above_the_activation_maximum(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        body = activation(
            principal, scheduleInfo={"expiration": {"type": "afterDuration", "duration": "PT9H"}}
        )
        assert "ExpirationRule" in _failed(await sim.request("assignment", body, **MFA))
        body["scheduleInfo"]["expiration"]["duration"] = "PT8H"
        assert (await sim.request("assignment", body, **MFA)).status_code == 201

    async def test_no_expiration_is_refused_for_activations(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        body = activation(principal, scheduleInfo={"expiration": {"type": "noExpiration"}})
        assert "ExpirationRule" in _failed(await sim.request("assignment", body, **MFA))

    async def test_without_eligibility_the_eligibility_rule_fails(self, sim: Sim) -> None:
        message = _failed(await sim.request("assignment", activation(plain_user(sim.state)), **MFA))
        assert message == 'The following policy rules failed: ["EligibilityRule"]'

    async def test_activation_of_a_standing_role_is_role_assignment_exists(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        response = await sim.request("assignment", activation(principal), **MFA)
        assert response.json()["error"]["code"] == "RoleAssignmentExists"

    async def test_authentication_context_needs_the_claim(self, sim: Sim) -> None:
        await _patch(
            sim,
            USER_ADMIN,
            {
                "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
                "id": "Enablement_EndUser_Assignment",
                "enabledRules": ["Justification"],
            },
        )
        await _patch(
            sim,
            USER_ADMIN,
            {
                "@odata.type": AUTH_CONTEXT_RULE,
                "id": "AuthenticationContext_EndUser_Assignment",
                "isEnabled": True,
                "claimValue": "c1",
            },
        )
        principal = await _eligible(sim)
        refused = await sim.request("assignment", activation(principal))
        assert refused.json()["error"]["code"] == "RoleAssignmentRequestAcrsValidationFailed"
        assert (
            await sim.request("assignment", activation(principal), **{"x-sim-acrs": "c1"})
        ).status_code == 201

    async def test_future_start_is_granted(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        start = sim.clock.now() + timedelta(hours=1)
        body = activation(
            principal,
            scheduleInfo={
                "startDateTime": format_datetime(start),
                "expiration": {"type": "afterDuration", "duration": "PT1H"},
            },
        )
        created = (await sim.request("assignment", body, **MFA)).json()
        assert created["status"] == "Granted"
        assert created["completedDateTime"] == format_datetime(start)

    async def test_members_of_an_eligible_group_can_activate(self, sim: Sim) -> None:
        group = next(g for g in sim.state.groups.values() if g.is_assignable_to_role)
        await sim.request("eligibility", assign_body(group.id, USER_ADMIN))
        member = group.member_ids[0]
        response = await sim.request("assignment", activation(member), **MFA)
        assert response.status_code == 201

    async def test_activation_ends_at_its_end_time(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        await sim.request("assignment", activation(principal), **MFA)
        started = sim.clock.now()
        sim.clock.advance(3 * 3600)
        instances = await sim.get(
            f"{RM}/roleAssignmentScheduleInstances?$filter=principalId eq '{principal}'"
        )
        assert instances.json()["value"] == []
        active = [
            e
            for e in await sim.timeline()
            if e["principal_id"] == principal and e["kind"] == "active"
        ]
        assert [(e["change"], e["at"]) for e in active] == [
            ("added", format_datetime(started)),
            ("removed", format_datetime(started + timedelta(hours=2))),
        ]
        audits = (
            await sim.get(
                f"/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq '{EXPIRED}'"
            )
        ).json()["value"]
        assert audits
        assert audits[0]["activityDateTime"] == format_datetime(started + timedelta(hours=2))


class TestDeactivate:
    async def test_self_deactivate_after_five_minutes(self, sim: Sim) -> None:
        principal = await _eligible(sim)
        await sim.request("assignment", activation(principal), **MFA)
        body = {**activation(principal), "action": "selfDeactivate"}
        del body["scheduleInfo"]
        too_soon = await sim.request("assignment", body, **MFA)
        assert too_soon.json()["error"]["code"] == "RoleAssignmentRecentlyChanged"
        sim.clock.advance(600)
        done = await sim.request("assignment", body, **MFA)
        assert done.status_code == 201
        assert done.json()["status"] == "Revoked"
        assert sim.state.actives.find(principal, USER_ADMIN, "/") is None

    async def test_deactivating_nothing(self, sim: Sim) -> None:
        body = {**activation(holder(sim.state, USER_ADMIN)), "action": "selfDeactivate"}
        response = await sim.request("assignment", body, **MFA)
        assert response.json()["error"]["code"] == "RoleAssignmentDoesNotExist"


class TestApproval:
    async def _require_approval(self, sim: Sim, role: str, approver: str) -> None:
        await _patch(
            sim,
            role,
            {
                "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
                "id": "Approval_EndUser_Assignment",
                "setting": {
                    "isApprovalRequired": True,
                    "approvalMode": "SingleStage",
                    "approvalStages": [
                        {
                            "approvalStageTimeOutInDays": 1,
                            "primaryApprovers": [
                                {"@odata.type": "#microsoft.graph.singleUser", "userId": approver}
                            ],
                        }
                    ],
                },
            },
        )

    async def test_pending_then_approved(self, sim: Sim) -> None:
        approver = plain_user(sim.state)
        await self._require_approval(sim, GA, approver)
        requester = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(requester, GA))
        pending = (await sim.request("assignment", activation(requester, GA), **MFA)).json()
        assert pending["status"] == "PendingApproval"
        assert pending["approvalId"]
        assert sim.state.actives.find(requester, GA, "/") is None
        sim.clock.advance(900)
        decided = await sim.client.post(
            f"/_sim/approvals/{pending['id']}",
            json={"decision": "approve", "approver_id": approver},
        )
        assert decided.status_code == 200
        assert decided.json()["status"] == "Provisioned"
        instance = sim.state.actives.find(requester, GA, "/")
        assert instance is not None
        assert instance.assignment_type == "Activated"
        assert instance.start == sim.clock.now()
        assert instance.end == sim.clock.now() + timedelta(hours=2)

    async def test_denied(self, sim: Sim) -> None:
        approver = plain_user(sim.state)
        await self._require_approval(sim, GA, approver)
        requester = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(requester, GA))
        pending = (await sim.request("assignment", activation(requester, GA), **MFA)).json()
        decided = await sim.client.post(
            f"/_sim/approvals/{pending['id']}", json={"decision": "deny", "approver_id": approver}
        )
        assert decided.json()["status"] == "Denied"
        assert sim.state.actives.find(requester, GA, "/") is None
        names = {a.body["activityDisplayName"] for a in sim.state.audits}
        assert "Add member to role request denied (PIM activation)" in names

    @pytest.mark.parametrize("who", ["requester", "stranger"])
    async def test_only_configured_approvers_decide(self, sim: Sim, who: str) -> None:
        approver = plain_user(sim.state)
        await self._require_approval(sim, GA, approver)
        requester = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(requester, GA))
        pending = (await sim.request("assignment", activation(requester, GA), **MFA)).json()
        other = requester if who == "requester" else holder(sim.state, GA)
        decided = await sim.client.post(
            f"/_sim/approvals/{pending['id']}", json={"decision": "approve", "approver_id": other}
        )
        assert decided.status_code in {400, 403}
        assert sim.state.requests[pending["id"]].status == "PendingApproval"

    async def test_deciding_twice_is_a_conflict(self, sim: Sim) -> None:
        approver = plain_user(sim.state)
        await self._require_approval(sim, GA, approver)
        requester = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(requester, GA))
        pending = (await sim.request("assignment", activation(requester, GA), **MFA)).json()
        decision = {"decision": "deny", "approver_id": approver}
        await sim.client.post(f"/_sim/approvals/{pending['id']}", json=decision)
        again = await sim.client.post(f"/_sim/approvals/{pending['id']}", json=decision)
        assert again.status_code == 409
