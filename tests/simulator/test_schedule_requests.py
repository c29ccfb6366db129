"""Admin schedule requests: the conversion and rollback lifecycle and every documented refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.simulator import catalog
from app.simulator.timefmt import format_datetime
from tests.simulator.conftest import (
    APP_ADMIN,
    GA,
    PRA,
    RM,
    USER_ADMIN,
    Sim,
    SimFactory,
    assign_body,
    holder,
    plain_user,
    remove_body,
)


async def _patch_rule(sim: Sim, role_id: str, rule: dict[str, Any]) -> None:
    policy_id = sim.state.policy_for_role(role_id).id
    response = await sim.patch(
        f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules/{rule['id']}", rule
    )
    assert response.status_code in {200, 204}, response.text


def _expiration(rule_id: str, required: bool, maximum: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule",
        "id": rule_id,
        "isExpirationRequired": required,
        "maximumDuration": maximum,
    }


def _enablement(rule_id: str, rules: list[str]) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
        "id": rule_id,
        "enabledRules": rules,
    }


def _error(response: Any) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


class TestConversionLifecycle:
    async def test_eligible_first_then_remove_active(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        created = await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        assert created.status_code == 201
        body = created.json()
        assert body["status"] == "Provisioned"
        assert body["targetScheduleId"] == body["id"]
        assert body["scheduleInfo"]["expiration"] == {
            "type": "noExpiration",
            "endDateTime": None,
            "duration": None,
        }
        removed = await sim.request("assignment", remove_body(principal, USER_ADMIN))
        assert removed.status_code == 201
        revoked = removed.json()
        assert revoked["status"] == "Revoked"
        assert revoked["scheduleInfo"] is None
        assert revoked["targetScheduleId"] is None
        assert revoked["completedDateTime"] is None
        changes = [
            (e["kind"], e["change"])
            for e in await sim.timeline()
            if e["principal_id"] == principal
            and e["role_definition_id"] == USER_ADMIN
            and e["cause"] != "seed"
        ]
        assert changes == [("eligible", "added"), ("active", "removed")]

    async def test_rollback_restores_a_pim_created_active_assignment(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        await sim.request("assignment", remove_body(principal, USER_ADMIN))
        sim.clock.advance(301)
        restored = (await sim.request("assignment", assign_body(principal, USER_ADMIN))).json()
        assert restored["status"] == "Provisioned"
        schedule = sim.state.actives.find(principal, USER_ADMIN, "/")
        assert schedule is not None
        assert schedule.id == restored["id"]
        assert not schedule.outside_pim
        assert (
            await sim.request("eligibility", remove_body(principal, USER_ADMIN))
        ).status_code == 201
        assert sim.state.eligibles.find(principal, USER_ADMIN, "/") is None

    async def test_audit_records_name_the_pim_activities(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        await sim.request(
            "eligibility", assign_body(principal, USER_ADMIN, justification="Phase 1")
        )
        await sim.request("assignment", remove_body(principal, USER_ADMIN))
        audits = (
            await sim.get(
                "/v1.0/auditLogs/directoryAudits"
                f"?$filter=targetResources/any(t: t/id eq '{principal}')"
            )
        ).json()["value"]
        names = {a["activityDisplayName"] for a in audits}
        assert "Add eligible member to role in PIM completed (permanent)" in names
        assert "Remove permanent direct role assignment" in names
        added = next(
            a for a in audits if a["activityDisplayName"].startswith("Add eligible member")
        )
        assert added["category"] == "RoleManagement"
        assert added["loggedByService"] == "PIM"
        assert added["initiatedBy"]["app"]["displayName"] == "PIM Rollout"
        assert {"key": "Justification", "value": "Phase 1"} in added["additionalDetails"]

    async def test_validation_only_runs_checks_and_creates_nothing(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        before = len(sim.state.requests), len(sim.state.eligibles), len(sim.state.timeline)
        body = assign_body(principal, USER_ADMIN, isValidationOnly=True)
        response = await sim.request("eligibility", body)
        assert response.status_code == 201
        assert response.json()["isValidationOnly"] is True
        assert (
            len(sim.state.requests),
            len(sim.state.eligibles),
            len(sim.state.timeline),
        ) == before
        assert (await sim.request("assignment", {**body, "justification": None})).status_code == 400

    async def test_enum_values_are_case_insensitive_and_echoed_camel_case(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        body = assign_body(principal, USER_ADMIN, action="AdminAssign")
        body["scheduleInfo"] = {"expiration": {"type": "AfterDuration", "duration": "P30D"}}
        created = (await sim.request("eligibility", body)).json()
        assert created["action"] == "adminAssign"
        assert created["scheduleInfo"]["expiration"] == {
            "type": "afterDuration",
            "endDateTime": None,
            "duration": "P30D",
        }
        instance = sim.state.eligibles.find(principal, USER_ADMIN, "/")
        assert instance is not None
        assert instance.end == sim.clock.now() + timedelta(days=30)

    async def test_service_principal_can_be_removed_but_not_made_eligible(self, sim: Sim) -> None:
        sp = holder(sim.state, APP_ADMIN, kind="servicePrincipal")
        refused = await sim.request("eligibility", assign_body(sp, APP_ADMIN))
        assert _error(refused)[:2] == (400, "ServicePrincipalEligibilityNotSupported")
        timebound = assign_body(sp, catalog.CLOUD_APPLICATION_ADMINISTRATOR)
        timebound["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P90D"}}
        assert (await sim.request("assignment", timebound)).status_code == 201
        assert (await sim.request("assignment", remove_body(sp, APP_ADMIN))).status_code == 201

    async def test_list_get_and_filter_requests(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        created = (await sim.request("eligibility", assign_body(principal, USER_ADMIN))).json()
        listed = (
            await sim.get(
                f"{RM}/roleEligibilityScheduleRequests?$filter=principalId eq '{principal}'"
            )
        ).json()
        assert [r["id"] for r in listed["value"]] == [created["id"]]
        got = await sim.get(f"{RM}/roleEligibilityScheduleRequests/{created['id']}")
        assert got.json()["status"] == "Provisioned"
        by_status = await sim.get(
            f"{RM}/roleEligibilityScheduleRequests"
            "?$filter=status eq 'Provisioned' and action eq 'adminAssign'"
        )
        assert created["id"] in {r["id"] for r in by_status.json()["value"]}
        assert (
            await sim.get(f"{RM}/roleAssignmentScheduleRequests/{created['id']}")
        ).status_code == 404

    async def test_expand_target_schedule_on_a_request(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        created = (await sim.request("eligibility", assign_body(principal, USER_ADMIN))).json()
        got = (
            await sim.get(
                f"{RM}/roleEligibilityScheduleRequests/{created['id']}"
                "?$expand=targetSchedule,principal"
            )
        ).json()
        assert got["targetSchedule"]["id"] == created["id"]
        assert got["principal"]["id"] == principal


class TestRefusals:
    async def test_assigning_what_exists_is_role_assignment_exists(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        response = await sim.request("assignment", assign_body(principal, USER_ADMIN))
        assert _error(response)[:2] == (400, "RoleAssignmentExists")
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        again = await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        assert _error(again)[1] == "RoleAssignmentExists"

    @pytest.mark.parametrize("action", ["adminRemove", "adminUpdate", "adminExtend"])
    async def test_changing_nothing_is_role_assignment_does_not_exist(
        self, sim: Sim, action: str
    ) -> None:
        body = {**assign_body(plain_user(sim.state), USER_ADMIN), "action": action}
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P10D"}}
        response = await sim.request("eligibility", body)
        assert _error(response)[:2] == (400, "RoleAssignmentDoesNotExist")

    async def test_no_expiration_when_expiry_is_required_fails_expiration_rule(
        self, sim: Sim
    ) -> None:
        await _patch_rule(
            sim, USER_ADMIN, _expiration("Expiration_Admin_Eligibility", True, "P90D")
        )
        response = await sim.request("eligibility", assign_body(plain_user(sim.state), USER_ADMIN))
        assert _error(response) == (
            400,
            "RoleAssignmentRequestPolicyValidationFailed",
            'The following policy rules failed: ["ExpirationRule"]',
        )

    async def test_duration_above_maximum_fails_expiration_rule(self, sim: Sim) -> None:
        await _patch_rule(sim, USER_ADMIN, _expiration("Expiration_Admin_Assignment", True, "P90D"))
        body = assign_body(plain_user(sim.state), USER_ADMIN)
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P120D"}}
        assert "ExpirationRule" in _error(await sim.request("assignment", body))[2]
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P90D"}}
        assert (await sim.request("assignment", body)).status_code == 201

    async def test_default_active_assignment_needs_a_justification(self, sim: Sim) -> None:
        body = assign_body(plain_user(sim.state), catalog.REPORTS_READER, justification=None)
        assert (
            _error(await sim.request("assignment", body))[2]
            == 'The following policy rules failed: ["JustificationRule"]'
        )
        # Enablement_Admin_Eligibility is empty by default: an eligibility needs none.
        assert (await sim.request("eligibility", body)).status_code == 201

    async def test_mfa_on_admin_assignment_cannot_be_met_by_an_app(self, sim: Sim) -> None:
        await _patch_rule(
            sim,
            USER_ADMIN,
            _enablement(
                "Enablement_Admin_Assignment", ["Justification", "MultiFactorAuthentication"]
            ),
        )
        body = assign_body(plain_user(sim.state), USER_ADMIN)
        assert (
            _error(await sim.request("assignment", body))[2]
            == 'The following policy rules failed: ["MfaRule"]'
        )

    async def test_several_rules_fail_together(self, sim: Sim) -> None:
        await _patch_rule(sim, USER_ADMIN, _expiration("Expiration_Admin_Assignment", True, "P30D"))
        body = assign_body(plain_user(sim.state), USER_ADMIN, justification=None)
        message = _error(await sim.request("assignment", body))[2]
        assert (
            message == 'The following policy rules failed: ["ExpirationRule","JustificationRule"]'
        )

    async def test_last_active_global_administrator_cannot_be_removed(self, sim: Sim) -> None:
        holders = list(sim.state.actives.for_role(GA))
        for schedule in holders[:-1]:
            assert (
                await sim.request("assignment", remove_body(schedule.principal_id, GA))
            ).status_code == 201
        last = await sim.request("assignment", remove_body(holders[-1].principal_id, GA))
        assert _error(last)[:2] == (400, "LastActiveRoleAssignmentRemovalNotAllowed")

    async def test_last_active_privileged_role_administrator_cannot_be_removed(
        self, sim: Sim
    ) -> None:
        holders = list(sim.state.actives.for_role(PRA))
        for schedule in holders[:-1]:
            await sim.request("assignment", remove_body(schedule.principal_id, PRA))
        response = await sim.request("assignment", remove_body(holders[-1].principal_id, PRA))
        assert _error(response)[1] == "LastActiveRoleAssignmentRemovalNotAllowed"
        # An eligible PRA elsewhere does not count as active.
        await sim.request("eligibility", assign_body(plain_user(sim.state), PRA))
        response = await sim.request("assignment", remove_body(holders[-1].principal_id, PRA))
        assert _error(response)[1] == "LastActiveRoleAssignmentRemovalNotAllowed"

    async def test_five_minute_rule_with_a_fake_clock(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        sim.clock.advance(299)
        too_soon = await sim.request("eligibility", remove_body(principal, USER_ADMIN))
        assert _error(too_soon)[:2] == (400, "RoleAssignmentRecentlyChanged")
        sim.clock.advance(1)
        assert (
            await sim.request("eligibility", remove_body(principal, USER_ADMIN))
        ).status_code == 201

    async def test_five_minute_rule_follows_the_knob(
        self, make_sim: SimFactory, tenant: Any
    ) -> None:
        from app.simulator.faults import SimLimits

        sim = await make_sim(tenant, SimLimits(throttling=False, min_change_interval_seconds=0))
        principal = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        assert (
            await sim.request("eligibility", remove_body(principal, USER_ADMIN))
        ).status_code == 201

    async def test_start_and_end_less_than_five_minutes_apart(self, sim: Sim) -> None:
        body = assign_body(plain_user(sim.state), USER_ADMIN)
        end = sim.clock.now() + timedelta(minutes=4)
        body["scheduleInfo"] = {
            "expiration": {"type": "afterDateTime", "endDateTime": format_datetime(end)}
        }
        assert _error(await sim.request("assignment", body))[:2] == (400, "ActiveDurationTooShort")
        assert _error(await sim.request("eligibility", body))[:2] == (
            400,
            "EligibleDurationTooShort",
        )

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"action": None}, "'action' is required"),
            ({"action": "adminDelete"}, "Invalid value 'adminDelete'"),
            ({"principalId": None}, "'principalId' is required"),
            ({"principalId": "not-a-guid"}, "must be a GUID"),
            ({"roleDefinitionId": None}, "'roleDefinitionId' is required"),
            ({"directoryScopeId": None}, "'directoryScopeId' or 'appScopeId' is required"),
            (
                {"scheduleInfo": {"expiration": {"type": "sometimes"}}},
                "scheduleInfo.expiration.type",
            ),
            (
                {"scheduleInfo": {"expiration": {"type": "afterDuration"}}},
                "needs scheduleInfo.expiration.duration",
            ),
            (
                {"scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "P1Y"}}},
                "duration",
            ),
            ({"scheduleInfo": {"startDateTime": "tomorrow"}}, "startDateTime"),
            ({"favouriteColour": "blue"}, "does not exist"),
        ],
    )
    async def test_invalid_bodies_are_400_with_a_clear_message(
        self, sim: Sim, change: dict[str, Any], message: str
    ) -> None:
        body = {
            k: v
            for k, v in {**assign_body(plain_user(sim.state), USER_ADMIN), **change}.items()
            if v is not None
        }
        status, code, text = _error(await sim.request("eligibility", body))
        assert status == 400
        assert code == "BadRequest"
        assert message in text

    async def test_unknown_principal_role_and_plain_groups(self, sim: Sim) -> None:
        unknown = await sim.request(
            "eligibility", assign_body("00000000-0000-4000-8000-000000000001", USER_ADMIN)
        )
        assert _error(unknown)[1] == "PrincipalNotFound"
        role = await sim.request(
            "eligibility",
            assign_body(plain_user(sim.state), "00000000-0000-4000-8000-000000000002"),
        )
        assert _error(role)[1] == "RoleDefinitionNotFound"
        plain_group = next(g.id for g in sim.state.groups.values() if not g.is_assignable_to_role)
        group = await sim.request("eligibility", assign_body(plain_group, USER_ADMIN))
        assert _error(group)[1] == "GroupNotRoleAssignable"

    async def test_malformed_json_is_400(self, sim: Sim) -> None:
        response = await sim.client.post(
            f"{RM}/roleEligibilityScheduleRequests",
            content=b"{not json",
            headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        )
        assert response.status_code == 400

    async def test_self_actions_are_not_eligibility_actions(self, sim: Sim) -> None:
        body = {**assign_body(plain_user(sim.state), USER_ADMIN), "action": "selfActivate"}
        assert _error(await sim.request("eligibility", body))[1] == "ActionNotSupported"


class TestScheduledAndUpdated:
    async def test_future_dated_request_is_granted_then_provisioned(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        body = assign_body(principal, USER_ADMIN)
        start = sim.clock.now() + timedelta(hours=2)
        body["scheduleInfo"] = {
            "startDateTime": format_datetime(start),
            "expiration": {"type": "noExpiration"},
        }
        created = (await sim.request("eligibility", body)).json()
        assert created["status"] == "Granted"
        instances = f"{RM}/roleEligibilityScheduleInstances?$filter=principalId eq '{principal}'"
        assert (await sim.get(instances)).json()["value"] == []
        sim.clock.advance(2 * 3600)
        assert len((await sim.get(instances)).json()["value"]) == 1
        again = (await sim.get(f"{RM}/roleEligibilityScheduleRequests/{created['id']}")).json()
        assert again["status"] == "Provisioned"
        added = [e for e in await sim.timeline() if e["principal_id"] == principal]
        assert added[0]["at"] == format_datetime(start)

    async def test_cancel_granted_request(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        body = assign_body(principal, USER_ADMIN)
        body["scheduleInfo"] = {
            "startDateTime": format_datetime(sim.clock.now() + timedelta(days=1)),
            "expiration": {"type": "afterDuration", "duration": "P7D"},
        }
        created = (await sim.request("assignment", body)).json()
        cancel = await sim.post(f"{RM}/roleAssignmentScheduleRequests/{created['id']}/cancel")
        assert cancel.status_code == 204
        assert cancel.content == b""
        assert sim.state.actives.find(principal, USER_ADMIN, "/") is None
        status = (await sim.get(f"{RM}/roleAssignmentScheduleRequests/{created['id']}")).json()[
            "status"
        ]
        assert status == "Canceled"
        again = await sim.post(
            f"{RM}/roleAssignmentScheduleRequests/{created['id']}/microsoft.graph.cancel"
        )
        assert _error(again)[:2] == (400, "RequestNotCancelable")

    async def test_cancel_provisioned_request_is_400_and_unknown_is_404(self, sim: Sim) -> None:
        created = (
            await sim.request("eligibility", assign_body(plain_user(sim.state), USER_ADMIN))
        ).json()
        response = await sim.post(f"{RM}/roleEligibilityScheduleRequests/{created['id']}/cancel")
        assert response.status_code == 400
        missing = await sim.post(
            f"{RM}/roleEligibilityScheduleRequests/00000000-0000-4000-8000-000000000009/cancel"
        )
        assert missing.status_code == 404

    async def test_time_bound_eligibility_expires_at_its_end(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        body = assign_body(principal, USER_ADMIN)
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "PT1H"}}
        await sim.request("eligibility", body)
        sim.clock.advance(3600)
        assert sim.state.eligibles.find(principal, USER_ADMIN, "/") is not None  # lazily applied
        await sim.get(f"{RM}/roleEligibilitySchedules")
        assert sim.state.eligibles.find(principal, USER_ADMIN, "/") is None
        changes = [
            (e["change"], e["cause"])
            for e in await sim.timeline()
            if e["principal_id"] == principal
        ]
        assert changes == [("added", "request"), ("removed", "expired")]

    async def test_admin_update_and_extend(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        body = assign_body(principal, USER_ADMIN)
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P10D"}}
        first = (await sim.request("eligibility", body)).json()
        sim.clock.advance(600)
        extend = {
            **body,
            "action": "adminExtend",
            "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "P20D"}},
        }
        extended = await sim.request("eligibility", extend)
        assert extended.status_code == 201
        assert extended.json()["targetScheduleId"] == first["id"]
        schedule = sim.state.eligibles.find(principal, USER_ADMIN, "/")
        assert schedule is not None
        assert schedule.end
        assert schedule.end > sim.clock.now() + timedelta(days=19)
        sim.clock.advance(600)
        shorter = {
            **body,
            "action": "adminExtend",
            "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "P1D"}},
        }
        assert (await sim.request("eligibility", shorter)).status_code == 400
        update = {
            **body,
            "action": "adminUpdate",
            "scheduleInfo": {"expiration": {"type": "noExpiration"}},
        }
        assert (await sim.request("eligibility", update)).status_code == 201
        updated = sim.state.eligibles.find(principal, USER_ADMIN, "/")
        assert updated is not None
        assert updated.end is None

    async def test_renew_recreates_an_expired_assignment(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        body = {**assign_body(principal, USER_ADMIN), "action": "adminRenew"}
        body["scheduleInfo"] = {"expiration": {"type": "afterDuration", "duration": "P30D"}}
        renewed = await sim.request("eligibility", body)
        assert renewed.status_code == 201
        assert sim.state.eligibles.find(principal, USER_ADMIN, "/") is not None
