"""Preflight against the simulated tenant: each check's verdict, and ``start`` refused on an error.

Every case breaks one thing in the tenant (through the simulator's control API or Graph itself),
then reads the verdicts, the refusal and the plan's history.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.db.session import unit_of_work
from app.domain.roles import GLOBAL_ADMINISTRATOR
from app.engine import actions
from app.engine.preflight import PreflightReport
from app.problems import PreflightFailedError
from app.services import plans, tenants
from app.services.plans import PlanView
from app.simulator.state import DEFAULT_GRANTED_PERMISSIONS, Group
from tests.engine.conftest import Rig

CHECK_NAMES = {
    "licensing",
    "permissions",
    "break_glass",
    "circular_trust",
    "role_settings",
    "bindings",
}
GRAPH = {"Authorization": "Bearer preflight-test"}
POLICIES = "/v1.0/policies/roleManagementPolicies"
ASSIGNMENT_REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
ELIGIBILITY_REQUESTS = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests"
ENABLEMENT_RULE = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
EXPIRATION_RULE = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (120, 20)


# --- helpers ---------------------------------------------------------------------------------


async def start(rig: Rig, plan_id: str) -> PlanView:
    return await actions.start(
        rig.ectx, plan_id=plan_id, actor="tester", reason="CHG-42", expected_version=None
    )


async def refused_start(rig: Rig, plan_id: str) -> PreflightFailedError:
    with pytest.raises(PreflightFailedError) as caught:
        await start(rig, plan_id)
    return caught.value


def by_name(checks: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in checks if c["name"] == name]


def assert_refused_for(
    rig: Rig, plan_id: str, error: PreflightFailedError, check: str, cause: str
) -> list[dict[str, Any]]:
    """The plan did not move, the refusal and the history name ``check`` and ``cause``."""
    view = rig.view(plan_id)
    assert view.row.state == "draft"
    assert view.row.version == 1
    assert view.row.started_at is None
    assert all(p.row.state == "pending" for p in view.phases)
    assert error.status_code == 409
    assert error.extra["current_state"] == "draft"
    assert error.detail.startswith("preflight failed: ")
    assert cause in error.detail
    checks: list[dict[str, Any]] = error.extra["checks"]
    failed = [c for c in checks if not c["ok"] and c["severity"] == "error"]
    assert check in {c["name"] for c in failed}
    assert any(cause in c["detail"] for c in failed if c["name"] == check), failed

    with rig.session_factory() as session:
        history = list(plans.history(session, plan_id))
    assert [h.event for h in history] == ["create", "preflight"]
    note = history[-1]
    assert note.actor == "tester"
    assert note.from_state == note.to_state == "draft"
    assert note.reason is not None
    assert note.reason.startswith("failed: ")
    assert cause in note.reason
    assert note.details is not None
    assert note.details["passed"] is False
    assert note.details["checks"] == checks
    assert view.row.preflight == note.details
    return checks


async def patch_rule(rig: Rig, role_id: str, body: dict[str, Any]) -> None:
    """Change one PIM rule of a role the way an administrator would: a Graph PATCH."""
    policy_id = rig.sim_state.policy_for_role(role_id).id
    response = await rig.sim_http.patch(
        f"{POLICIES}/{policy_id}/rules/{body['id']}", json=body, headers=GRAPH
    )
    assert response.status_code == 200, response.text


# --- 1. a healthy tenant ---------------------------------------------------------------------


class TestHealthyTenant:
    async def test_every_check_passes_and_start_records_the_verdicts(self, rig: Rig) -> None:
        plan_id = rig.create_plan("default")

        view = await start(rig, plan_id)

        assert view.row.state == "running"
        report = view.row.preflight
        assert report is not None
        assert report["passed"] is True
        checks: list[dict[str, Any]] = report["checks"]
        assert {c["name"] for c in checks} == CHECK_NAMES
        assert [c for c in checks if not c["ok"]] == []
        assert all(c["severity"] == "error" for c in checks)
        details = {c["name"]: [x["detail"] for x in by_name(checks, c["name"])] for c in checks}
        assert details["licensing"] == ["Entra ID P2 is present (AAD_PREMIUM_P2 service plan)"]
        assert details["break_glass"] == [
            "2 break-glass accounts hold permanent Active Global Administrator"
        ]
        # The default plan converts, sets rules, requires approval, reviews and mails: every
        # permission it needs is probed.
        assert sorted(details["permissions"]) == sorted(
            [
                "read role definitions and assignments: granted - needs "
                "RoleManagement.Read.Directory",
                "read role settings: granted - needs RoleManagementPolicy.Read.Directory",
                "create eligible assignments: granted - needs "
                "RoleEligibilitySchedule.ReadWrite.Directory",
                "remove active assignments: granted - needs "
                "RoleAssignmentSchedule.ReadWrite.Directory",
                "change role settings: granted - needs RoleManagementPolicy.ReadWrite.Directory",
                "create access reviews: granted - needs AccessReview.ReadWrite.All",
                "send the comms mail: granted - needs Mail.Send",
                "read the audit log for health gates: granted - needs AuditLog.Read.All",
            ]
        )
        # One verdict per approved role: GA (security team), PAA and PRA (managers).
        assert len(details["circular_trust"]) == 3
        assert any(
            d.startswith("ga-approval: Global Administrator approvers (")
            and d.endswith("hold no assignment of it")
            for d in details["circular_trust"]
        )
        assert details["role_settings"] == [
            "the 11 target roles allow conversion and exact rollback"
        ]

        with rig.session_factory() as session:
            history = list(plans.history(session, plan_id))
        events = [h.event for h in history]
        assert events[:3] == ["create", "preflight", "start"]
        note, started = history[1], history[2]
        assert note.reason == "passed"
        assert note.details == report
        assert started.details is not None
        assert started.details["preflight"] == report
        assert started.details["baseline_items"] > 0

    async def test_preflight_on_its_own_records_a_note_and_changes_nothing(self, rig: Rig) -> None:
        plan_id = rig.create_plan("default")
        before = await rig.sim("GET", "/_sim/state")

        report = await actions.preflight(rig.ectx, plan_id=plan_id, actor="tester")

        assert isinstance(report, PreflightReport)
        assert report.passed is True
        assert report.failures() == []
        assert {c.name for c in report.checks} == CHECK_NAMES
        view = rig.view(plan_id)
        assert view.row.state == "draft"
        assert view.row.preflight == report.to_json()
        with rig.session_factory() as session:
            events = [h.event for h in plans.history(session, plan_id)]
        assert events == ["create", "preflight"]
        after = await rig.sim("GET", "/_sim/state")
        # Probes are validation-only or aimed at objects that do not exist: nothing changed.
        for key in ("active_assignments", "eligible_assignments", "policies", "review_definitions"):
            assert after[key] == before[key], key
        assert await rig.sim("GET", "/_sim/outbox") == []


# --- 2. licensing ----------------------------------------------------------------------------


class TestLicensing:
    async def test_without_entra_id_p2_start_is_refused(self, rig: Rig) -> None:
        plan_id = rig.create_plan("default")
        assert await rig.sim("PUT", "/_sim/licensing", json={"p2": False}) == {"p2": False}

        error = await refused_start(rig, plan_id)

        checks = assert_refused_for(
            rig, plan_id, error, "licensing", "no subscribed SKU provides the AAD_PREMIUM_P2"
        )
        (licensing,) = by_name(checks, "licensing")
        assert licensing["ok"] is False
        assert "PIM and access reviews need Entra ID P2" in licensing["detail"]
        # The PIM reads behind the other checks are refused for the same reason, and say so.
        others = [c for c in checks if not c["ok"] and c["name"] != "licensing"]
        assert {c["name"] for c in others} == {"break_glass", "circular_trust", "role_settings"}
        assert {c["detail"] for c in others} == {
            "could not be checked: AadPremiumLicenseRequired: "
            "The tenant needs an AAD Premium 2 license."
        }

        # Licensed again, the same plan starts: the refusal left nothing behind.
        await rig.sim("PUT", "/_sim/licensing", json={"p2": True})
        view = await start(rig, plan_id)
        assert view.row.state == "running"
        assert view.row.preflight is not None
        assert view.row.preflight["passed"] is True


# --- 3. break-glass --------------------------------------------------------------------------


class TestBreakGlass:
    async def test_a_tenant_with_one_break_glass_account_is_refused(self, rig: Rig) -> None:
        profile = await rig.sim("GET", "/_sim/profile")
        only = profile["break_glass_ids"][0]
        with unit_of_work(rig.session_factory) as session:
            tenants.update_tenant(
                session,
                tenant_id=rig.tenant_id,
                changes={"break_glass_ids": [only]},
                box=rig.ectx.secret_box,
                now=rig.clock.now(),
            )
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        checks = assert_refused_for(
            rig,
            plan_id,
            error,
            "break_glass",
            "1 break-glass account(s) configured; at least 2 are required",
        )
        assert [c["ok"] for c in by_name(checks, "break_glass")] == [False]

    async def test_a_break_glass_account_without_standing_ga_is_refused(self, rig: Rig) -> None:
        first, second = (await rig.sim("GET", "/_sim/profile"))["break_glass_ids"]
        # Someone removed the second account's Global Administrator through PIM.
        removed = await rig.sim_http.post(
            ASSIGNMENT_REQUESTS,
            headers=GRAPH,
            json={
                "action": "adminRemove",
                "principalId": second,
                "roleDefinitionId": GLOBAL_ADMINISTRATOR,
                "directoryScopeId": "/",
                "justification": "cleanup",
            },
        )
        assert removed.status_code == 201, removed.text
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        checks = assert_refused_for(
            rig,
            plan_id,
            error,
            "break_glass",
            "1 of 2 break-glass accounts hold permanent Active Global Administrator; "
            f"not holding it: {second}",
        )
        assert first not in by_name(checks, "break_glass")[0]["detail"].split("not holding it")[1]


# --- 4. circular trust against real membership -----------------------------------------------


class TestCircularTrust:
    async def test_nested_approver_who_is_in_the_ga_cohort_is_refused(self, rig: Rig) -> None:
        state = rig.sim_state
        bindings = state.profile.bindings
        platform = state.groups[bindings["it_platform_team"]["id"]]
        security = state.groups[bindings["security_team"]["id"]]
        pilot_member = sorted(platform.member_ids)[0]
        if state.actives.find(pilot_member, GLOBAL_ADMINISTRATOR, "/") is None:
            await rig.sim(
                "POST",
                "/_sim/assignments",
                json={"principal_id": pilot_member, "role_definition_id": GLOBAL_ADMINISTRATOR},
            )
        # The pilot member reaches the security team only through a nested group, so the plan
        # (security_team approves GA, it_platform_team is converted) looks clean on paper.
        assert pilot_member not in security.member_ids
        on_call = state.add_group(
            Group(
                id=str(uuid.uuid4()),
                display_name="Security on-call",
                mail_nickname="security-on-call",
                member_ids=[pilot_member],
            )
        )
        security.member_ids.append(on_call.id)
        plan_id = rig.create_plan("default")  # plan validation passes: the bindings differ

        error = await refused_start(rig, plan_id)

        cause = (
            f"ga-approval: circular trust: {pilot_member} would approve Global Administrator "
            "but can activate it (Global Administrator approvers must be a different identity)"
        )
        checks = assert_refused_for(rig, plan_id, error, "circular_trust", cause)
        verdicts = by_name(checks, "circular_trust")
        assert [c["detail"] for c in verdicts if not c["ok"]] == [cause]
        # The managers' rules are still judged on their own and pass.
        assert sum(c["ok"] for c in verdicts) == 2

        # Out of the group again, the same plan starts.
        security.member_ids.remove(on_call.id)
        view = await start(rig, plan_id)
        assert view.row.state == "running"


# --- 5. Graph permissions --------------------------------------------------------------------


class TestPermissions:
    @pytest.mark.parametrize(
        ("permission", "label"),
        [
            ("RoleManagementPolicy.ReadWrite.Directory", "change role settings"),
            ("RoleAssignmentSchedule.ReadWrite.Directory", "remove active assignments"),
            ("Mail.Send", "send the comms mail"),
            ("AuditLog.Read.All", "read the audit log for health gates"),
        ],
    )
    async def test_a_missing_permission_is_named_and_refuses_start(
        self, rig: Rig, permission: str, label: str
    ) -> None:
        granted = sorted(DEFAULT_GRANTED_PERMISSIONS - {permission})
        assert await rig.sim("PUT", "/_sim/permissions", json={"granted": granted}) == {
            "granted": granted
        }
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        cause = f"{label}: denied (403) - needs {permission}"
        checks = assert_refused_for(rig, plan_id, error, "permissions", cause)
        denied = [c["detail"] for c in by_name(checks, "permissions") if not c["ok"]]
        assert denied == [cause]
        assert {c["name"] for c in checks if not c["ok"]} == {"permissions"}

    async def test_a_missing_directory_read_permission_refuses_start_through_the_group_checks(
        self, rig: Rig
    ) -> None:
        # Not probed on its own: the checks that read group membership fail on it, quoting the
        # permissions Graph would accept.
        granted = sorted(DEFAULT_GRANTED_PERMISSIONS - {"Directory.Read.All"})
        await rig.sim("PUT", "/_sim/permissions", json={"granted": granted})
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        cause = (
            "could not be checked: Authorization_RequestDenied: Insufficient privileges to "
            "complete the operation. Requires one of: Directory.Read.All, "
            "Directory.ReadWrite.All, Group.Read.All, Group.ReadWrite.All, GroupMember.Read.All."
        )
        checks = assert_refused_for(rig, plan_id, error, "circular_trust", cause)
        failed = [c for c in checks if not c["ok"]]
        assert {c["name"] for c in failed} == {"circular_trust", "bindings", "permissions"}
        assert {c["detail"] for c in failed if c["name"] != "permissions"} == {cause}
        # Graph reads directory audits only with both AuditLog.Read.All and Directory.Read.All.
        assert [c["detail"] for c in failed if c["name"] == "permissions"] == [
            "read the audit log for health gates: denied (403) - needs AuditLog.Read.All"
        ]


# --- 6. admin MFA rules an app cannot satisfy ------------------------------------------------


class TestAdminMfaRules:
    @pytest.mark.parametrize(
        ("rule_id", "consequence"),
        [
            (
                "Enablement_Admin_Eligibility",
                "an app cannot satisfy it, so converting to Eligible would fail",
            ),
            (
                "Enablement_Admin_Assignment",
                "a rollback could not re-create permanent Active assignments",
            ),
        ],
    )
    async def test_mfa_required_of_the_assigning_admin_is_an_error(
        self, rig: Rig, rule_id: str, consequence: str
    ) -> None:
        await patch_rule(
            rig,
            GLOBAL_ADMINISTRATOR,
            {
                "@odata.type": ENABLEMENT_RULE,
                "id": rule_id,
                "enabledRules": ["MultiFactorAuthentication", "Justification"],
            },
        )
        # What the verdict predicts: Graph refuses the app's request on that rule (MfaRule).
        kind = "eligibility" if rule_id.endswith("Eligibility") else "assignment"
        probe = await rig.sim_http.post(
            ELIGIBILITY_REQUESTS if kind == "eligibility" else ASSIGNMENT_REQUESTS,
            headers=GRAPH,
            json={
                "action": "adminAssign",
                "principalId": sorted(rig.sim_state.users)[0],
                "roleDefinitionId": GLOBAL_ADMINISTRATOR,
                "directoryScopeId": "/",
                "justification": "probe",
                "isValidationOnly": True,
                "scheduleInfo": {"expiration": {"type": "noExpiration"}},
            },
        )
        assert probe.status_code == 400
        assert probe.json()["error"]["code"] == "RoleAssignmentRequestPolicyValidationFailed"
        assert '"MfaRule"' in probe.json()["error"]["message"]
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        cause = (
            f"Global Administrator: {rule_id} requires MFA of the assigning admin; {consequence}"
        )
        checks = assert_refused_for(rig, plan_id, error, "role_settings", cause)
        (verdict,) = by_name(checks, "role_settings")
        assert verdict == {
            "name": "role_settings",
            "ok": False,
            "detail": cause,
            "severity": "error",
        }


# --- 7. expiration rules that forbid permanent assignments -----------------------------------


class TestExpirationRules:
    async def test_eligibility_that_must_expire_is_a_warning_and_start_goes_ahead(
        self, rig: Rig
    ) -> None:
        await patch_rule(
            rig,
            GLOBAL_ADMINISTRATOR,
            {
                "@odata.type": EXPIRATION_RULE,
                "id": "Expiration_Admin_Eligibility",
                "isExpirationRequired": True,
                "maximumDuration": "P90D",
            },
        )
        plan_id = rig.create_plan("default")

        view = await start(rig, plan_id)

        assert view.row.state == "running"
        report = view.row.preflight
        assert report is not None
        assert report["passed"] is True
        (verdict,) = by_name(report["checks"], "role_settings")
        assert verdict == {
            "name": "role_settings",
            "ok": False,
            "severity": "warning",
            "detail": "Global Administrator: the role requires eligible assignments to expire; "
            "using its maximum P90D",
        }
        with rig.session_factory() as session:
            note = plans.history(session, plan_id)[1]
        assert note.event == "preflight"
        assert note.reason == "passed"
        assert note.details is not None
        assert verdict in note.details["checks"]

    async def test_active_assignments_that_must_expire_refuse_start(self, rig: Rig) -> None:
        await patch_rule(
            rig,
            GLOBAL_ADMINISTRATOR,
            {
                "@odata.type": EXPIRATION_RULE,
                "id": "Expiration_Admin_Assignment",
                "isExpirationRequired": True,
                "maximumDuration": "P180D",
            },
        )
        plan_id = rig.create_plan("default")

        error = await refused_start(rig, plan_id)

        cause = (
            "Global Administrator: Expiration_Admin_Assignment forbids permanent Active "
            "assignments; a rollback could not restore the baseline exactly"
        )
        checks = assert_refused_for(rig, plan_id, error, "role_settings", cause)
        assert [c["detail"] for c in by_name(checks, "role_settings")] == [cause]
