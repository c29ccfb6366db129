"""Role management policies, their 17 rules, and rule PATCH validation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.simulator.faults import SimLimits
from app.simulator.state import SimState
from tests.simulator.conftest import GA, SAMPLES, USER_ADMIN, Sim, SimFactory, plain_user

POLICIES = "/v1.0/policies/roleManagementPolicies"
ASSIGNMENTS = "/v1.0/policies/roleManagementPolicyAssignments"
SCOPE = "$filter=scopeId eq '/' and scopeType eq 'DirectoryRole'"
RULE_IDS = [
    "Expiration_Admin_Eligibility",
    "Enablement_Admin_Eligibility",
    "Notification_Admin_Admin_Eligibility",
    "Notification_Requestor_Admin_Eligibility",
    "Notification_Approver_Admin_Eligibility",
    "Expiration_Admin_Assignment",
    "Enablement_Admin_Assignment",
    "Notification_Admin_Admin_Assignment",
    "Notification_Requestor_Admin_Assignment",
    "Notification_Approver_Admin_Assignment",
    "Expiration_EndUser_Assignment",
    "Enablement_EndUser_Assignment",
    "Approval_EndUser_Assignment",
    "AuthenticationContext_EndUser_Assignment",
    "Notification_Admin_EndUser_Assignment",
    "Notification_Requestor_EndUser_Assignment",
    "Notification_Approver_EndUser_Assignment",
]


def _sample(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / name).read_text()))


async def _policy_id(sim: Sim, role: str = USER_ADMIN) -> str:
    url = f"{ASSIGNMENTS}?{SCOPE} and roleDefinitionId eq '{role}'"
    return str((await sim.get(url)).json()["value"][0]["policyId"])


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


class TestReading:
    async def test_list_requires_scope_filter(self, sim: Sim) -> None:
        assert (await sim.get(POLICIES)).status_code == 400
        assert (await sim.get(f"{POLICIES}?$filter=scopeId eq '/'")).status_code == 400
        listed = (await sim.get(f"{POLICIES}?{SCOPE}")).json()["value"]
        assert len(listed) == len(sim.state.roles)
        tenant = sim.state.tenant_id
        assert all(p["id"].startswith(f"DirectoryRole_{tenant}_") for p in listed)
        assert all(p["scopeType"] == "DirectoryRole" and p["scopeId"] == "/" for p in listed)

    async def test_directory_scope_type_gives_the_same_policies_with_its_prefix(
        self, sim: Sim
    ) -> None:
        directory = (
            await sim.get(
                f"{ASSIGNMENTS}?$filter=scopeId eq '/' and scopeType eq 'Directory' "
                f"and roleDefinitionId eq '{GA}'"
            )
        ).json()
        role = (await sim.get(f"{ASSIGNMENTS}?{SCOPE} and roleDefinitionId eq '{GA}'")).json()
        (d,), (r,) = directory["value"], role["value"]
        assert d["policyId"].startswith("Directory_")
        assert r["policyId"].startswith("DirectoryRole_")
        assert d["policyId"].split("_", 1)[1] == r["policyId"].split("_", 1)[1]
        assert d["id"] == f"{d['policyId']}_{GA}"
        same = (await sim.get(f"{POLICIES}/{d['policyId']}?$expand=rules")).json()
        assert same["scopeType"] == "Directory"
        assert len(same["rules"]) == 17

    async def test_assignment_with_expanded_policy_rules_matches_the_sample_defaults(
        self, sim: Sim
    ) -> None:
        url = f"{ASSIGNMENTS}?{SCOPE} and roleDefinitionId eq '{GA}'&$expand=policy($expand=rules)"
        body = (await sim.get(url)).json()
        assert body["@odata.context"].endswith(
            "#policies/roleManagementPolicyAssignments(policy(rules()))"
        )
        ours = body["value"][0]["policy"]["rules"]
        sample = _sample(
            "roleManagementPolicyAssignments_list_filterRole_expandPolicyRules.response.json"
        )
        assert ours == sample["value"][0]["policy"]["rules"]
        assert [r["id"] for r in ours] == RULE_IDS

    async def test_rules_list_and_single_rule(self, sim: Sim) -> None:
        policy_id = await _policy_id(sim)
        rules = (await sim.get(f"{POLICIES}/{policy_id}/rules")).json()
        assert [r["id"] for r in rules["value"]] == RULE_IDS
        rule = (await sim.get(f"{POLICIES}/{policy_id}/rules/Expiration_Admin_Eligibility")).json()
        sample = _sample("roleManagementPolicyRule_get.response.json")
        assert {k: v for k, v in rule.items() if k != "@odata.context"} == {
            k: v for k, v in sample.items() if k != "@odata.context"
        }

    async def test_unknown_ids_are_404(self, sim: Sim) -> None:
        policy_id = await _policy_id(sim)
        assert (await sim.get(f"{POLICIES}/DirectoryRole_x_y")).status_code == 404
        assert (await sim.get(f"{POLICIES}/{policy_id}/rules/Nope_Rule")).status_code == 404
        assert (
            await sim.get(f"{ASSIGNMENTS}/{policy_id}_{'0' * 8}-0000-4000-8000-000000000000")
        ).status_code == 404


class TestPatch:
    @pytest.mark.parametrize(
        "sample",
        sorted(p.name for p in SAMPLES.glob("roleManagementPolicyRule_update_*.request.json")),
    )
    async def test_doc_samples_are_accepted(self, sim: Sim, sample: str) -> None:
        body = _sample(sample)
        if body["id"] == "Approval_EndUser_Assignment":
            stage = body["setting"]["approvalStages"][0]
            stage["primaryApprovers"][0]["userId"] = plain_user(sim.state)
            stage["primaryApprovers"][1]["groupId"] = next(iter(sim.state.groups))
        policy_id = await _policy_id(sim)
        response = await sim.patch(f"{POLICIES}/{policy_id}/rules/{body['id']}", body)
        assert response.status_code == 200, response.text
        stored = sim.state.policy_for_role(USER_ADMIN).rules[body["id"]]
        for key in ("isExpirationRequired", "maximumDuration", "enabledRules"):
            if key in body:
                assert stored[key] == body[key]
        assert stored["target"]["operations"] == ["all"]

    async def test_patch_answers_with_the_rule_and_audits(self, sim: Sim) -> None:
        policy_id = await _policy_id(sim)
        body = _sample("roleManagementPolicyRule_update_expirationEndUser.request.json")
        response = await sim.patch(
            f"{POLICIES}/{policy_id}/rules/Expiration_EndUser_Assignment", body
        )
        rule = response.json()
        assert rule["maximumDuration"] == "PT1H45M"
        assert rule["isExpirationRequired"] is True
        assert "@odata.type" not in rule["target"]
        policy = (await sim.get(f"{POLICIES}/{policy_id}")).json()
        assert policy["lastModifiedDateTime"] is not None
        names = [a.body["activityDisplayName"] for a in sim.state.audits]
        assert names[-1] == "Update role setting in PIM"

    async def test_status_204_knob(self, make_sim: SimFactory, tenant: SimState) -> None:
        sim = await make_sim(tenant, SimLimits(throttling=False, policy_patch_status=204))
        policy_id = await _policy_id(sim)
        body = _sample("roleManagementPolicyRule_update_expirationAdminEligibility.request.json")
        response = await sim.patch(
            f"{POLICIES}/{policy_id}/rules/Expiration_Admin_Eligibility", body
        )
        assert response.status_code == 204
        assert response.content == b""

    async def _patch(self, sim: Sim, rule_id: str, body: dict[str, Any]) -> Any:
        policy_id = await _policy_id(sim)
        return await sim.patch(f"{POLICIES}/{policy_id}/rules/{rule_id}", body)

    def _rule(self, sim: Sim, rule_id: str) -> dict[str, Any]:
        return copy.deepcopy(sim.state.policy_for_role(USER_ADMIN).rules[rule_id])

    async def test_missing_odata_type(self, sim: Sim) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        del body["@odata.type"]
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    async def test_odata_type_of_another_rule_kind(self, sim: Sim) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        body["@odata.type"] = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    async def test_id_must_match_the_url(self, sim: Sim) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        body["id"] = "Expiration_Admin_Assignment"
        assert _error(await self._patch(sim, "Expiration_EndUser_Assignment", body))[0] == 400

    async def test_unknown_rule_is_404(self, sim: Sim) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        assert (await self._patch(sim, "Expiration_Everyone", body)).status_code == 404

    async def test_expiry_required_needs_maximum(self, sim: Sim) -> None:
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
            "id": "Expiration_Admin_Eligibility",
            "isExpirationRequired": True,
        }
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    @pytest.mark.parametrize("duration", ["PT29M", "PT25H", "P2D"])
    async def test_activation_maximum_between_30_minutes_and_24_hours(
        self, sim: Sim, duration: str
    ) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        body["maximumDuration"] = duration
        assert _error(await self._patch(sim, body["id"], body))[0] == 400

    async def test_unknown_enablement_value(self, sim: Sim) -> None:
        body = self._rule(sim, "Enablement_EndUser_Assignment")
        body["enabledRules"] = ["Justification", "Prayer"]
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    @pytest.mark.parametrize(
        "rule_id", ["Enablement_Admin_Assignment", "Enablement_Admin_Eligibility"]
    )
    async def test_ticketing_only_on_activation(self, sim: Sim, rule_id: str) -> None:
        body = self._rule(sim, rule_id)
        body["enabledRules"] = ["Justification", "Ticketing"]
        assert _error(await self._patch(sim, rule_id, body))[0] == 400

    async def test_mfa_and_auth_context_conflict_both_ways(self, sim: Sim) -> None:
        context = self._rule(sim, "AuthenticationContext_EndUser_Assignment")
        context.update(isEnabled=True, claimValue="c1")
        # MFA is on by default, so enabling the auth context conflicts...
        assert _error(await self._patch(sim, context["id"], context)) == (400, "MfaAndAcrsConflict")
        enablement = self._rule(sim, "Enablement_EndUser_Assignment")
        enablement["enabledRules"] = ["Justification"]
        assert (await self._patch(sim, enablement["id"], enablement)).status_code == 200
        assert (await self._patch(sim, context["id"], context)).status_code == 200
        # ...and re-adding MFA while the auth context is on conflicts too.
        enablement["enabledRules"] = ["Justification", "MultiFactorAuthentication"]
        assert _error(await self._patch(sim, enablement["id"], enablement)) == (
            400,
            "MfaAndAcrsConflict",
        )

    async def test_approval_needs_a_primary_approver(self, sim: Sim) -> None:
        body = self._rule(sim, "Approval_EndUser_Assignment")
        body["setting"]["isApprovalRequired"] = True
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    @pytest.mark.parametrize(
        "approver",
        [
            {
                "@odata.type": "#microsoft.graph.singleUser",
                "userId": "00000000-0000-4000-8000-00000000000a",
            },
            {
                "@odata.type": "#microsoft.graph.groupMembers",
                "groupId": "00000000-0000-4000-8000-00000000000b",
            },
            {"@odata.type": "#microsoft.graph.someoneElse"},
        ],
    )
    async def test_approvers_must_exist(self, sim: Sim, approver: dict[str, str]) -> None:
        body = self._rule(sim, "Approval_EndUser_Assignment")
        body["setting"]["isApprovalRequired"] = True
        body["setting"]["approvalStages"][0]["primaryApprovers"] = [approver]
        assert _error(await self._patch(sim, body["id"], body)) == (400, "InvalidPolicyRule")

    async def test_caller_and_level_of_a_rule_are_fixed(self, sim: Sim) -> None:
        body = self._rule(sim, "Expiration_EndUser_Assignment")
        body["target"]["caller"] = "Admin"
        assert _error(await self._patch(sim, body["id"], body))[0] == 400

    async def test_notification_rule(self, sim: Sim) -> None:
        body = self._rule(sim, "Notification_Admin_Admin_Eligibility")
        body.update(notificationLevel="Critical", notificationRecipients=["soc@contoso.com"])
        assert (await self._patch(sim, body["id"], body)).status_code == 200
        body["recipientType"] = "Approver"
        assert _error(await self._patch(sim, body["id"], body))[0] == 400

    async def test_notification_rule_reads_back_as_set(self, sim: Sim) -> None:
        policy_id = await _policy_id(sim)
        url = f"{POLICIES}/{policy_id}/rules/Notification_Admin_EndUser_Assignment"
        body = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule",
            "id": "Notification_Admin_EndUser_Assignment",
            "notificationType": "Email",
            "recipientType": "Admin",
            "notificationLevel": "All",
            "isDefaultRecipientsEnabled": False,
            "notificationRecipients": ["secops@contoso.com", "soc@fabrikam.com"],
            "target": {
                "@odata.type": "microsoft.graph.unifiedRoleManagementPolicyRuleTarget",
                "caller": "EndUser",
                "operations": ["All"],
                "level": "Assignment",
            },
        }
        assert (await sim.patch(url, body)).status_code == 200
        read = (await sim.get(url)).json()
        assert read["notificationRecipients"] == ["secops@contoso.com", "soc@fabrikam.com"]
        assert read["isDefaultRecipientsEnabled"] is False
        assert read["notificationLevel"] == "All"
        assert read["target"]["operations"] == ["all"]

    @pytest.mark.parametrize(
        ("change", "status"),
        [
            ({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"}, 400),
            ({"notificationLevel": "Loud"}, 400),
            ({"notificationType": "Sms"}, 400),
            ({"isDefaultRecipientsEnabled": "yes"}, 400),
            ({"notificationRecipients": ["not an address"]}, 400),
            ({"notificationRecipients": "soc@contoso.com"}, 400),
        ],
    )
    async def test_notification_rule_body_is_validated(
        self, sim: Sim, change: dict[str, Any], status: int
    ) -> None:
        body = self._rule(sim, "Notification_Admin_Admin_Assignment")
        body.update(change)
        assert _error(await self._patch(sim, body["id"], body)) == (status, "InvalidPolicyRule")
        stored = sim.state.policy_for_role(USER_ADMIN).rules["Notification_Admin_Admin_Assignment"]
        assert stored["notificationRecipients"] == []

    async def test_unknown_notification_rule_id_is_404(self, sim: Sim) -> None:
        body = self._rule(sim, "Notification_Admin_Admin_Assignment")
        body["id"] = "Notification_Auditor_Admin_Assignment"
        response = await self._patch(sim, "Notification_Auditor_Admin_Assignment", body)
        assert _error(response) == (404, "ResourceNotFound")

    async def test_non_object_body(self, sim: Sim) -> None:
        policy_id = await _policy_id(sim)
        response = await sim.patch(
            f"{POLICIES}/{policy_id}/rules/Expiration_EndUser_Assignment", ["x"]
        )
        assert response.status_code == 400
