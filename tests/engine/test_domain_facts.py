"""The PIM constraints of reference/domain-facts.md, each against the simulated tenant.

Each test shows the constraint in the simulator itself (Graph's answer) and what the engine
does about it when it runs a plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.db.models import JournalEntry, WorkItem
from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.db.session import SessionFactory
from app.domain.drift import AssignmentSource, DriftKind
from app.domain.roles import (
    APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    USER_ADMINISTRATOR,
)
from app.engine import actions
from app.engine.monitoring import collect_now
from app.engine.tick import tick
from app.problems import InvalidInputError, PreflightFailedError
from app.services import tenants
from app.services.monitoring.reports import plan_drift
from app.services.plans import PlanView
from app.settings import GraphSettings, MonitoringSettings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import DEFAULT_GRANTED_PERMISSIONS
from tests.engine.conftest import Rig, assemble_rig
from tests.engine.helpers import eligible, no_lockout, permanent_active, rules_of
from tests.factories import FakeClock

CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
GRAPH = {"Authorization": "Bearer domain-facts-test"}
POLICIES = "/v1.0/policies/roleManagementPolicies"
ASSIGNMENT_REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
ELIGIBILITY_REQUESTS = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests"
ENABLEMENT_RULE = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
EXPIRATION_RULE = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
AUTH_CONTEXT_RULE = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"
PILOT_ROLES = [GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR, APPLICATION_ADMINISTRATOR]


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (120, 20)


# --- plans and driving -----------------------------------------------------------------------


def one_phase_plan(
    roles: list[str],
    steps: list[dict[str, Any]],
    role_settings: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    settings = role_settings or {}
    return {
        "name": "domain-facts",
        "roles": [
            {"id": role, **({"settings": settings[role]} if role in settings else {})}
            for role in roles
        ],
        "phases": [{"key": "pilot", "title": "Pilot", "starts_after": "P0D", "steps": steps}],
    }


def convert(cohort: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "convert_cohort", "cohort": cohort}


def apply_settings(**settings: Any) -> dict[str, Any]:
    return {"kind": "apply_role_settings", "settings": settings}


async def start(rig: Rig, plan_id: str) -> PlanView:
    view = await actions.start(
        rig.ectx, plan_id=plan_id, actor="tester", reason="CHG-7", expected_version=None
    )
    assert view.row.preflight is not None
    assert view.row.preflight["passed"] is True
    return view


async def run_plan(rig: Rig, spec: dict[str, Any]) -> tuple[str, PlanView]:
    plan_id = rig.create_plan(spec=spec)
    await start(rig, plan_id)
    view = await rig.run_until(plan_id, {"completed", "failed"})
    return plan_id, view


def work_items(rig: Rig, plan_id: str) -> list[WorkItem]:
    with rig.session_factory() as session:
        return list(WorkItemRepository(session).list_items(plan_id))


def journal(rig: Rig, plan_id: str) -> list[JournalEntry]:
    with rig.session_factory() as session:
        return list(JournalRepository(session).list_for_plan(plan_id))


async def graph(rig: Rig, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await rig.sim_http.request(method, path, headers=GRAPH, **kwargs)


def graph_error(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


async def patch_rule(rig: Rig, role_id: str, body: dict[str, Any]) -> httpx.Response:
    policy_id = rig.sim_state.policy_for_role(role_id).id
    return await graph(rig, "PATCH", f"{POLICIES}/{policy_id}/rules/{body['id']}", json=body)


def admin_request(action: str, principal_id: str, role_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "action": action,
        "principalId": principal_id,
        "roleDefinitionId": role_id,
        "directoryScopeId": "/",
        "justification": "domain facts",
        **extra,
    }


PERMANENT = {"scheduleInfo": {"expiration": {"type": "noExpiration"}}}


def users_without_roles(rig: Rig) -> list[str]:
    state = rig.sim_state
    holders = {s.principal_id for s in state.actives} | {s.principal_id for s in state.eligibles}
    excluded = set(state.profile.break_glass_ids) | {state.profile.comms["sender"]}
    return sorted(u for u in state.users if u not in holders and u not in excluded)


# --- a tenant whose simulator shares the engine's clock ----------------------------------------


class SharedClock:
    """The simulator reads the engine's fake clock: both see the same instant, and Graph's
    five-minute rule passes exactly when the test moves the clock on."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._origin = clock.now()

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return 1000.0 + (self._clock.now() - self._origin).total_seconds()


@pytest.fixture
def tenant_interval() -> float:
    """What the tenant row tells the engine about Graph's minimum interval between changes."""
    return 300.0


@pytest.fixture
async def paced_rig(
    session_factory: SessionFactory, graph_settings: GraphSettings, tenant_interval: float
) -> AsyncIterator[Rig]:
    state = generate_tenant(users=120, admins=20, seed=11)
    clock = FakeClock()
    # Graph's real rule (5 minutes); throttling off because this clock only moves when told to.
    limits = SimLimits(min_change_interval_seconds=300, throttling=False)
    sim_app = create_simulator_app(state, limits=limits, clock=SharedClock(clock))
    async with assemble_rig(
        session_factory,
        graph_settings,
        state,
        sim_app,
        clock,
        worker_id="paced-worker",
        tenant_name="Contoso (paced)",
        min_change_interval_seconds=tenant_interval,
    ) as assembled:
        yield assembled


# --- service principals ----------------------------------------------------------------------


class TestServicePrincipals:
    async def test_they_stay_active_and_the_plan_reports_them_skipped(self, rig: Rig) -> None:
        roles = [APPLICATION_ADMINISTRATOR, CLOUD_APPLICATION_ADMINISTRATOR]
        before = await rig.sim("GET", "/_sim/state")
        sp_ids = {sp["id"] for sp in before["service_principals"]}
        sp_keys = {k for k in permanent_active(before) if k[0] in sp_ids and k[1] in roles}
        user_keys = {
            k for k in permanent_active(before) if k[1] in roles and k[0] in rig.sim_state.users
        }
        assert len(sp_keys) == 2
        assert user_keys

        # Graph itself: a service principal cannot be made eligible for a directory role.
        sp_id, sp_role, _ = sorted(sp_keys)[0]
        refused = await graph(
            rig,
            "POST",
            ELIGIBILITY_REQUESTS,
            json=admin_request("adminAssign", sp_id, sp_role, isValidationOnly=True, **PERMANENT),
        )
        assert graph_error(refused)[:2] == (400, "ServicePrincipalEligibilityNotSupported")

        plan_id, view = await run_plan(rig, one_phase_plan(roles, [convert({"remaining": True})]))

        assert view.row.state == "completed"
        progress = view.phases[0].progress
        assert progress.skipped == len(sp_keys)
        assert progress.done == len(user_keys)
        assert progress.failed == 0
        skipped = [i for i in work_items(rig, plan_id) if i.state == "skipped"]
        assert {(i.principal_id, i.role_definition_id, i.directory_scope_id) for i in skipped} == (
            sp_keys
        )
        assert {i.principal_type for i in skipped} == {"servicePrincipal"}
        assert {i.last_error for i in skipped} == {
            "service principals cannot be eligible for directory roles"
        }
        after = await rig.sim("GET", "/_sim/state")
        assert sp_keys <= permanent_active(after)
        assert not sp_keys & eligible(after)
        assert user_keys <= eligible(after)
        assert not user_keys & permanent_active(after)
        # No request about a service principal ever reached Graph.
        touched = {s.principal_id for s in rig.sim_state.requests.values()}
        assert not touched & sp_ids


# --- the last active Global / Privileged Role Administrator ----------------------------------


class TestLastActiveAdministrator:
    async def test_converting_every_pra_keeps_the_last_one_active_and_says_why(
        self, rig: Rig
    ) -> None:
        # Two standing PRAs at least, so the engine has one to convert and one to keep.
        extra = users_without_roles(rig)[0]
        await rig.sim(
            "POST",
            "/_sim/assignments",
            json={"principal_id": extra, "role_definition_id": PRIVILEGED_ROLE_ADMINISTRATOR},
        )
        before = await rig.sim("GET", "/_sim/state")
        holders = {k for k in permanent_active(before) if k[1] == PRIVILEGED_ROLE_ADMINISTRATOR}
        break_glass = set(rig.sim_state.profile.break_glass_ids)
        assert len(holders) >= 2
        assert not {p for p, _, _ in holders} & break_glass

        plan_id, view = await run_plan(
            rig,
            one_phase_plan([PRIVILEGED_ROLE_ADMINISTRATOR], [convert({"remaining": True})]),
        )

        assert view.row.state == "completed"
        assert view.phases[0].progress.kept_active == 1
        assert view.phases[0].progress.done == len(holders) - 1
        (kept,) = [i for i in work_items(rig, plan_id) if i.state == "kept_active"]
        assert kept.last_error == (
            "kept Active: the last active Privileged Role Administrator "
            "(PIM refuses to remove it); it is also Eligible"
        )
        after = await rig.sim("GET", "/_sim/state")
        still_active = {k for k in permanent_active(after) if k[1] == PRIVILEGED_ROLE_ADMINISTRATOR}
        assert still_active == {(kept.principal_id, PRIVILEGED_ROLE_ADMINISTRATOR, "/")}
        assert holders <= eligible(after)
        assert not [e for e in journal(rig, plan_id) if e.status == "failed"]

        # Graph itself refuses to remove the one that is left.
        refused = await graph(
            rig,
            "POST",
            ASSIGNMENT_REQUESTS,
            json=admin_request("adminRemove", kept.principal_id, PRIVILEGED_ROLE_ADMINISTRATOR),
        )
        assert graph_error(refused) == (
            400,
            "LastActiveRoleAssignmentRemovalNotAllowed",
            "Removing the last active assignment of the Privileged Role Administrator role is "
            "not allowed.",
        )

    async def test_graph_refuses_removing_the_last_active_global_administrator(
        self, rig: Rig
    ) -> None:
        state = await rig.sim("GET", "/_sim/state")
        holders = sorted(p for p, r, _ in permanent_active(state) if r == GLOBAL_ADMINISTRATOR)
        assert len(holders) >= 3
        *removable, last = holders
        for principal in removable:
            removed = await graph(
                rig,
                "POST",
                ASSIGNMENT_REQUESTS,
                json=admin_request("adminRemove", principal, GLOBAL_ADMINISTRATOR),
            )
            assert removed.status_code == 201, removed.text

        refused = await graph(
            rig,
            "POST",
            ASSIGNMENT_REQUESTS,
            json=admin_request("adminRemove", last, GLOBAL_ADMINISTRATOR),
        )

        assert graph_error(refused) == (
            400,
            "LastActiveRoleAssignmentRemovalNotAllowed",
            "Removing the last active assignment of the Global Administrator role is not allowed.",
        )
        after = await rig.sim("GET", "/_sim/state")
        assert {p for p, r, _ in permanent_active(after) if r == GLOBAL_ADMINISTRATOR} == {last}


# --- Graph's five-minute rule -------------------------------------------------------------------


class TestFiveMinuteRule:
    async def test_graph_refuses_a_second_change_within_five_minutes(self, paced_rig: Rig) -> None:
        rig = paced_rig
        user = users_without_roles(rig)[0]
        created = await graph(
            rig,
            "POST",
            ELIGIBILITY_REQUESTS,
            json=admin_request("adminAssign", user, USER_ADMINISTRATOR, **PERMANENT),
        )
        assert created.status_code == 201, created.text
        remove = admin_request("adminRemove", user, USER_ADMINISTRATOR)

        rig.clock.advance(seconds=299)
        too_soon = await graph(rig, "POST", ELIGIBILITY_REQUESTS, json=remove)
        status, code, message = graph_error(too_soon)
        assert (status, code) == (400, "RoleAssignmentRecentlyChanged")
        assert "cannot be updated or removed within 5 minutes of its last change" in message
        assert rig.sim_state.eligibles.find(user, USER_ADMINISTRATOR, "/") is not None

        rig.clock.advance(seconds=1)
        removed = await graph(rig, "POST", ELIGIBILITY_REQUESTS, json=remove)
        assert removed.status_code == 201, removed.text
        assert rig.sim_state.eligibles.find(user, USER_ADMINISTRATOR, "/") is None

        # Start and end less than five minutes apart are refused as well.
        short = await graph(
            rig,
            "POST",
            ELIGIBILITY_REQUESTS,
            json=admin_request(
                "adminAssign",
                user,
                USER_ADMINISTRATOR,
                scheduleInfo={"expiration": {"type": "afterDuration", "duration": "PT4M"}},
            ),
        )
        assert graph_error(short)[:2] == (400, "EligibleDurationTooShort")

    @pytest.mark.parametrize(
        "tenant_interval",
        [
            pytest.param(300.0, id="engine-knows-the-rule"),
            pytest.param(0.0, id="only-graph-enforces-it"),
        ],
    )
    async def test_rollback_right_after_conversion_waits_then_completes(
        self, paced_rig: Rig, tenant_interval: float
    ) -> None:
        rig = paced_rig
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(
            spec=one_phase_plan(PILOT_ROLES, [convert({"binding": "it_platform_team"})])
        )
        await start(rig, plan_id)
        converted_at = rig.clock.now()
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed", view.phases[0].row.status_reason
        converted = {
            (i.principal_id, i.role_definition_id)
            for i in work_items(rig, plan_id)
            if i.state == "done"
        }
        assert converted

        rig.act(plan_id, "rollback", reason="undo at once")
        await tick(rig.ectx)

        view = rig.view(plan_id)
        assert view.row.state == "rolling_back"
        assert view.phases[0].row.state == "completed"
        entries = journal(rig, plan_id)
        removals = [e for e in entries if e.operation == "remove_eligibility"]
        if tenant_interval:
            # The engine knows the rule: it does not even ask Graph yet.
            assert view.row.status_reason == (
                "waiting for Graph's minimum interval between changes to one assignment "
                f"(the first can be undone at {converted_at + timedelta(seconds=300):%H:%M:%S} "
                "UTC)"
            )
            assert removals == []
        else:
            # Graph refuses each removal; the engine takes that as "wait", not as a failure.
            assert view.row.status_reason is not None
            assert view.row.status_reason.startswith("Graph asks to wait before changing ")
            assert len(removals) == len(converted)
            assert {(e.status, e.error_code) for e in removals} == {
                ("failed", "RoleAssignmentRecentlyChanged")
            }
        # Invariant 1 in reverse: the Active assignments came back first; Eligible ones stay.
        during = await rig.sim("GET", "/_sim/state")
        for principal, role in converted:
            assert (principal, role, "/") in permanent_active(during)
            assert (principal, role, "/") in eligible(during)

        rig.clock.advance(seconds=240)
        await tick(rig.ectx)
        assert rig.view(plan_id).row.state == "rolling_back"

        rig.clock.advance(seconds=61)
        await tick(rig.ectx)

        view = rig.view(plan_id)
        assert view.row.state == "rolled_back", view.row.status_reason
        assert view.row.status_reason is None
        assert view.phases[0].row.state == "rolled_back"
        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before)
        assert eligible(after) == eligible(before)
        removals = [e for e in journal(rig, plan_id) if e.operation == "remove_eligibility"]
        assert len(removals) == len(converted)
        assert {e.status for e in removals} == {"applied"}
        # Exactly one change of each kind per converted holder: nothing was sent twice.
        timeline = await rig.sim("GET", "/_sim/timeline")
        since_plan = [
            e
            for e in timeline
            if (e["principal_id"], e["role_definition_id"]) in converted
            and e["at"] >= converted_at.strftime("%Y-%m-%dT%H:%M:%S")
        ]
        changes = sorted((e["kind"], e["change"]) for e in since_plan)
        assert changes == sorted(
            [
                ("eligible", "added"),
                ("active", "removed"),
                ("active", "added"),
                ("eligible", "removed"),
            ]
            * len(converted)
        )
        assert no_lockout(timeline, converted) == []


# --- durable state is the schedules, not the requests ------------------------------------------


class TestSchedulesNotRequests:
    async def test_purged_requests_lose_nothing_on_retry_or_rollback(self, rig: Rig) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(
            spec=one_phase_plan(
                PILOT_ROLES,
                [
                    apply_settings(activation_max_duration="PT4H"),
                    convert({"binding": "it_platform_team"}),
                ],
            )
        )
        await start(rig, plan_id)
        # Removing Active assignments is denied for this run: the cohort ends up Eligible and
        # still Active, and the phase fails.
        granted = sorted(
            DEFAULT_GRANTED_PERMISSIONS - {"RoleAssignmentSchedule.ReadWrite.Directory"}
        )
        await rig.sim("PUT", "/_sim/permissions", json={"granted": granted})
        view = await rig.run_until(plan_id, {"failed"}, max_ticks=3)
        phase = view.phases[0].row
        assert phase.state == "failed"
        assert phase.status_reason is not None
        assert "removing the Active assignment failed" in phase.status_reason
        assert "PermissionScopeNotGranted" in phase.status_reason
        items = work_items(rig, plan_id)
        cohort = {(i.principal_id, i.role_definition_id, "/") for i in items}
        assert cohort
        assert {i.state for i in items} == {"failed"}
        middle = await rig.sim("GET", "/_sim/state")
        assert cohort <= eligible(middle)
        assert cohort <= permanent_active(middle)
        schedule_ids = {
            (a["principal_id"], a["role_definition_id"], "/"): a["schedule_id"]
            for a in middle["eligible_assignments"]
        }

        # The service purges the requests (Graph does after ~45 days).
        await rig.sim(
            "PUT", "/_sim/permissions", json={"granted": sorted(DEFAULT_GRANTED_PERMISSIONS)}
        )
        rig.sim_state.requests.clear()
        for path in (ELIGIBILITY_REQUESTS, ASSIGNMENT_REQUESTS):
            listed = await graph(rig, "GET", path)
            assert listed.status_code == 200
            assert listed.json()["value"] == []
        last_seq = (await rig.sim("GET", "/_sim/timeline"))[-1]["seq"]

        rig.act(plan_id, "retry", phase="pilot", reason="permission granted again")
        view = await rig.run_until(plan_id, {"completed", "failed"}, max_ticks=3)

        assert view.row.state == "completed", view.phases[0].row.status_reason
        assert {i.state for i in work_items(rig, plan_id)} == {"done"}
        after = await rig.sim("GET", "/_sim/state")
        assert not cohort & permanent_active(after)
        for key in cohort:
            assert key in eligible(after)
            live = next(
                a["schedule_id"]
                for a in after["eligible_assignments"]
                if (a["principal_id"], a["role_definition_id"], "/") == key
            )
            assert live == schedule_ids[key], "the eligibility was re-created"
        # The re-run only removed the Active assignments: nothing was created again.
        since = await rig.sim("GET", "/_sim/timeline", params={"since_seq": last_seq})
        assert sorted((e["kind"], e["change"]) for e in since) == [("active", "removed")] * len(
            cohort
        )
        assert {(r.kind, r.action) for r in rig.sim_state.requests.values()} == {
            ("assignment", "adminRemove")
        }

        rig.sim_state.requests.clear()
        rig.act(plan_id, "rollback", reason="undo")
        view = await rig.run_until(plan_id, {"rolled_back", "failed"}, max_ticks=3)

        assert view.row.state == "rolled_back", view.row.status_reason
        restored = await rig.sim("GET", "/_sim/state")
        assert permanent_active(restored) == permanent_active(before)
        assert eligible(restored) == eligible(before)
        for role in PILOT_ROLES:
            assert rules_of(restored, role) == rules_of(before, role), role


# --- ticketing on admin rules, MFA with an authentication context -----------------------------


class TestRuleConstraints:
    async def test_graph_refuses_ticketing_on_admin_rules_and_mfa_with_auth_context(
        self, rig: Rig
    ) -> None:
        for rule_id in ("Enablement_Admin_Assignment", "Enablement_Admin_Eligibility"):
            refused = await patch_rule(
                rig,
                GLOBAL_ADMINISTRATOR,
                {"@odata.type": ENABLEMENT_RULE, "id": rule_id, "enabledRules": ["Ticketing"]},
            )
            assert graph_error(refused) == (
                400,
                "InvalidPolicyRule",
                "Ticketing can only be required on activation (Enablement_EndUser_Assignment).",
            )
        # Activation requires MFA by default: an authentication context on top conflicts.
        auth_context = {
            "@odata.type": AUTH_CONTEXT_RULE,
            "id": "AuthenticationContext_EndUser_Assignment",
            "isEnabled": True,
            "claimValue": "c1",
        }
        refused = await patch_rule(rig, GLOBAL_ADMINISTRATOR, auth_context)
        assert graph_error(refused)[:2] == (400, "MfaAndAcrsConflict")
        # And the other way round: MFA on a role whose activation needs an auth context.
        no_mfa = {
            "@odata.type": ENABLEMENT_RULE,
            "id": "Enablement_EndUser_Assignment",
            "enabledRules": ["Justification"],
        }
        assert (await patch_rule(rig, GLOBAL_ADMINISTRATOR, no_mfa)).status_code == 200
        assert (await patch_rule(rig, GLOBAL_ADMINISTRATOR, auth_context)).status_code == 200
        refused = await patch_rule(
            rig,
            GLOBAL_ADMINISTRATOR,
            {**no_mfa, "enabledRules": ["MultiFactorAuthentication", "Justification"]},
        )
        assert graph_error(refused)[:2] == (400, "MfaAndAcrsConflict")

    async def test_a_plan_cannot_ask_for_ticketing_on_admin_assignments(self, rig: Rig) -> None:
        spec = one_phase_plan(
            [GLOBAL_ADMINISTRATOR],
            [apply_settings(require_ticket=True, require_admin_ticket=True)],
        )
        with pytest.raises(InvalidInputError) as caught:
            rig.create_plan(spec=spec)
        assert caught.value.extra["errors"] == [
            {
                "path": "spec.phases[0].steps[0].settings.require_admin_ticket",
                "message": "unknown field",
            }
        ]

    async def test_the_plans_ticket_setting_lands_on_the_activation_rule_only(
        self, rig: Rig
    ) -> None:
        before = rig.sim_state.policy_for_role(GLOBAL_ADMINISTRATOR).rules
        rule_ids = list(before)
        admin_rules = {
            rule_id: dict(before[rule_id])
            for rule_id in ("Enablement_Admin_Assignment", "Enablement_Admin_Eligibility")
        }

        _, view = await run_plan(
            rig,
            one_phase_plan(
                [GLOBAL_ADMINISTRATOR],
                [apply_settings(require_ticket=True, require_justification=True)],
            ),
        )

        assert view.row.state == "completed", view.phases[0].row.status_reason
        rules = rig.sim_state.policy_for_role(GLOBAL_ADMINISTRATOR).rules
        assert rules["Enablement_EndUser_Assignment"]["enabledRules"] == [
            "MultiFactorAuthentication",
            "Justification",
            "Ticketing",
        ]
        for rule_id, rule in admin_rules.items():
            assert rules[rule_id] == rule
        # The policy keeps its 17 fixed rules; only rules were PATCHed, never the policy.
        assert list(rules) == rule_ids
        assert len(rule_ids) == 17
        stats = await rig.sim("GET", "/_sim/requests")
        writes = {
            (r["method"], r["route"])
            for r in stats["by_route"]
            if r["method"] in {"PATCH", "PUT", "DELETE"}
        }
        assert writes == {("PATCH", "policies/roleManagementPolicies/{id}/rules/{ruleId}")}

    async def test_activation_maximum_outside_half_an_hour_to_a_day_is_refused(
        self, rig: Rig
    ) -> None:
        for duration, message in (
            ("PT25H", "must be at most 24 hours (PT24H)"),
            ("PT20M", "must be at least 30 minutes (PT30M)"),
        ):
            spec = one_phase_plan(
                [GLOBAL_ADMINISTRATOR], [apply_settings(activation_max_duration=duration)]
            )
            with pytest.raises(InvalidInputError) as caught:
                rig.create_plan(spec=spec)
            assert caught.value.extra["errors"] == [
                {
                    "path": "spec.phases[0].steps[0].settings.activation_max_duration",
                    "message": message,
                }
            ]
            refused = await patch_rule(
                rig,
                GLOBAL_ADMINISTRATOR,
                {
                    "@odata.type": EXPIRATION_RULE,
                    "id": "Expiration_EndUser_Assignment",
                    "isExpirationRequired": True,
                    "maximumDuration": duration,
                },
            )
            assert graph_error(refused) == (
                400,
                "InvalidPolicyRule",
                "The activation maximum duration must be between 30 minutes (PT30M) and "
                "24 hours (PT24H).",
            )

    async def test_mfa_on_a_role_with_an_auth_context_is_refused_at_preflight(
        self, rig: Rig
    ) -> None:
        await self._require_auth_context(rig)
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(spec=self._mfa_plan())

        with pytest.raises(PreflightFailedError) as refused:
            await start(rig, plan_id)

        conflict = [
            c["detail"]
            for c in refused.value.extra["checks"]
            if c["name"] == "role_settings" and not c["ok"]
        ]
        assert conflict == [
            "Global Administrator: phase pilot: the role requires a Conditional Access "
            "authentication context on activation; Graph refuses MFA on the same rule "
            "(MfaAndAcrsConflict) - drop require_mfa or the authentication context"
        ]
        assert rig.view(plan_id).row.state == "draft"
        after = await rig.sim("GET", "/_sim/state")
        assert after["policies"] == before["policies"]

    async def test_an_auth_context_added_after_start_stops_the_step_before_graph_is_asked(
        self, rig: Rig
    ) -> None:
        plan_id = rig.create_plan(spec=self._mfa_plan())
        await start(rig, plan_id)
        await self._require_auth_context(rig)
        before = await rig.sim("GET", "/_sim/state")

        view = await rig.run_until(plan_id, {"completed", "failed"})

        assert view.row.state == "failed"
        assert view.phases[0].row.status_reason == (
            "Global Administrator: the role requires a Conditional Access authentication "
            "context on activation; Graph refuses MFA on the same rule (MfaAndAcrsConflict) - "
            "drop require_mfa or the authentication context"
        )
        after = await rig.sim("GET", "/_sim/state")
        assert after["policies"] == before["policies"]
        assert eligible(after) == eligible(before)
        assert journal(rig, plan_id) == []

    @staticmethod
    def _mfa_plan() -> dict[str, Any]:
        return one_phase_plan(
            [GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR],
            [apply_settings(require_mfa=True), convert({"binding": "it_platform_team"})],
        )

    @staticmethod
    async def _require_auth_context(rig: Rig) -> None:
        for body in (
            {
                "@odata.type": ENABLEMENT_RULE,
                "id": "Enablement_EndUser_Assignment",
                "enabledRules": ["Justification"],
            },
            {
                "@odata.type": AUTH_CONTEXT_RULE,
                "id": "AuthenticationContext_EndUser_Assignment",
                "isEnabled": True,
                "claimValue": "c1",
            },
        ):
            assert (await patch_rule(rig, GLOBAL_ADMINISTRATOR, body)).status_code == 200


# --- expiration rules and the order of settings and conversions -------------------------------


class TestExpirationRule:
    async def test_permanent_eligibility_is_refused_and_conversion_uses_the_rules_maximum(
        self, rig: Rig
    ) -> None:
        rule = {
            "@odata.type": EXPIRATION_RULE,
            "id": "Expiration_Admin_Eligibility",
            "isExpirationRequired": True,
            "maximumDuration": "P90D",
        }
        assert (await patch_rule(rig, USER_ADMINISTRATOR, rule)).status_code == 200
        refused = await graph(
            rig,
            "POST",
            ELIGIBILITY_REQUESTS,
            json=admin_request(
                "adminAssign", users_without_roles(rig)[0], USER_ADMINISTRATOR, **PERMANENT
            ),
        )
        assert graph_error(refused) == (
            400,
            "RoleAssignmentRequestPolicyValidationFailed",
            'The following policy rules failed: ["ExpirationRule"]',
        )
        before = await rig.sim("GET", "/_sim/state")
        roles = [USER_ADMINISTRATOR, APPLICATION_ADMINISTRATOR]
        holders = {
            k for k in permanent_active(before) if k[1] in roles and k[0] in rig.sim_state.users
        }

        plan_id, view = await run_plan(
            rig,
            one_phase_plan(
                roles,
                [apply_settings(activation_max_duration="PT4H"), convert({"remaining": True})],
                role_settings={USER_ADMINISTRATOR: {"eligible_expiration": "P365D"}},
            ),
        )

        assert view.row.state == "completed", view.phases[0].row.status_reason
        assert view.phases[0].progress.failed == 0
        assert view.phases[0].row.status_reason == (
            "User Administrator: the role allows eligible assignments of at most P90D; "
            "using that instead of P365D"
        )
        after = await rig.sim("GET", "/_sim/state")
        created = {
            (a["principal_id"], a["role_definition_id"]): a
            for a in after["eligible_assignments"]
            if (a["principal_id"], a["role_definition_id"], "/") in holders
        }
        assert len(created) == len(holders)
        for (_, role), schedule in created.items():
            if role == USER_ADMINISTRATOR:
                span = datetime.fromisoformat(schedule["end"]) - datetime.fromisoformat(
                    schedule["start"]
                )
                assert span == timedelta(days=90)
            else:
                assert schedule["end"] is None
        assert not holders & permanent_active(after)
        # The settings step ran (and was journaled) before the first conversion.
        entries = journal(rig, plan_id)
        first_item = min(e.id or 0 for e in entries if e.operation == "create_eligibility")
        assert all((e.id or 0) < first_item for e in entries if e.operation == "update_policy_rule")
        assert any(e.operation == "update_policy_rule" for e in entries)

    async def test_a_plan_that_converts_before_applying_settings_is_refused(self, rig: Rig) -> None:
        spec = one_phase_plan(
            [USER_ADMINISTRATOR],
            [convert({"binding": "it_platform_team"}), apply_settings(require_mfa=True)],
        )
        with pytest.raises(InvalidInputError) as caught:
            rig.create_plan(spec=spec)
        assert caught.value.extra["errors"] == [
            {
                "path": "spec.phases[0].steps[1]",
                "message": "apply_role_settings must come before convert_cohort: Graph "
                "validates new eligible assignments against the role's settings",
            }
        ]


# --- assignments made outside PIM after the conversion ----------------------------------------


class TestOutsidePimDrift:
    async def test_detected_as_drift_and_left_alone_by_rollback(self, rig: Rig) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id, view = await run_plan(
            rig, one_phase_plan(PILOT_ROLES, [convert({"binding": "it_platform_team"})])
        )
        assert view.row.state == "completed"
        done = [i for i in work_items(rig, plan_id) if i.state == "done"]
        assert done
        back = done[0]
        newcomer = users_without_roles(rig)[0]
        # Someone gives standing access outside PIM: back to a converted member, and to a
        # user who never held the role.
        rig.clock.advance(hours=1)
        for principal, role in (
            (back.principal_id, back.role_definition_id),
            (newcomer, GLOBAL_ADMINISTRATOR),
        ):
            created = await rig.sim(
                "POST",
                "/_sim/assignments",
                json={"principal_id": principal, "role_definition_id": role},
            )
            assert created["created_outside_pim"] is True
        last_seq = (await rig.sim("GET", "/_sim/timeline"))[-1]["seq"]

        rig.clock.advance(hours=1)
        with rig.session_factory() as session:
            tenant = tenants.get_tenant(session, rig.tenant_id)
        assert await collect_now(rig.ectx, tenant, MonitoringSettings()) is not None
        with rig.session_factory() as session:
            findings = plan_drift(session, tenant_id=rig.tenant_id, plan_id=plan_id)

        assert {(f.principal_id, f.role_definition_id, f.kind, f.source) for f in findings} == {
            (
                back.principal_id,
                back.role_definition_id,
                DriftKind.reassigned_after_conversion,
                AssignmentSource.outside_pim,
            ),
            (
                newcomer,
                GLOBAL_ADMINISTRATOR,
                DriftKind.new_standing_assignment,
                AssignmentSource.outside_pim,
            ),
        }

        rig.act(plan_id, "rollback", reason="undo the pilot")
        view = await rig.run_until(plan_id, {"rolled_back", "failed"}, max_ticks=3)

        assert view.row.state == "rolled_back", view.row.status_reason
        after = await rig.sim("GET", "/_sim/state")
        newcomer_key = (newcomer, GLOBAL_ADMINISTRATOR, "/")
        assert permanent_active(after) == permanent_active(before) | {newcomer_key}
        assert eligible(after) == eligible(before)
        # The reassigned one is still the assignment made outside PIM: not re-created by PIM,
        # not removed.
        kept = rig.sim_state.actives.find(back.principal_id, back.role_definition_id, "/")
        assert kept is not None
        assert kept.outside_pim
        since = await rig.sim("GET", "/_sim/timeline", params={"since_seq": last_seq})
        assert not [
            e
            for e in since
            if e["kind"] == "active"
            and (e["principal_id"], e["role_definition_id"])
            in {(back.principal_id, back.role_definition_id), (newcomer, GLOBAL_ADMINISTRATOR)}
        ]
        undone = {
            e.operation: e.status
            for e in journal(rig, plan_id)
            if (e.target.get("principal_id"), e.target.get("role_id"))
            == (back.principal_id, back.role_definition_id)
        }
        assert undone["remove_active"] == "not_needed"
        assert "restore_active" not in undone
