"""MS.AAD.7 checks over a hand-built reading: each threshold at its edge."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.domain.posture import (
    Account,
    Grant,
    PostureReading,
    PostureResult,
    evaluate,
    plan_actions,
    summarize,
)
from app.domain.roles import (
    EXCHANGE_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    USER_ADMINISTRATOR,
)
from app.domain.validation import parse_plan
from tests.factories import plan_data
from tests.fixtures import GRAPH_SAMPLES

SAMPLES = GRAPH_SAMPLES
GA, PRA, UA = GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR, USER_ADMINISTRATOR
SECOPS = "secops@contoso.com"
BREAK_GLASS = ("bg-1", "bg-2")


def sample_rules() -> dict[str, dict[str, Any]]:
    data = json.loads(
        (
            SAMPLES
            / "roleManagementPolicyAssignments_list_filterRole_expandPolicyRules.response.json"
        ).read_text()
    )
    return {rule["id"]: rule for rule in data["value"][0]["policy"]["rules"]}


def user(principal: str, role: str, **over: Any) -> Grant:
    fields: dict[str, Any] = {
        "principal_id": principal,
        "principal_type": "user",
        "principal_name": principal.title(),
        "role_id": role,
        "kind": "eligible",
        "permanent": True,
        **over,
    }
    return Grant(**fields)


def standing(principal: str, role: str, **over: Any) -> Grant:
    return user(principal, role, **{"kind": "active", "outside_pim": True, **over})


def reading(
    grants: list[Grant],
    *,
    roles: tuple[str, ...] = (GA, PRA, UA),
    synced: tuple[str, ...] = (),
    rules: dict[str, dict[str, Any]] | None = None,
    mailboxes: tuple[str, ...] = (SECOPS,),
    members: dict[str, tuple[str, ...]] | None = None,
) -> PostureReading:
    principals = {g.principal_id for g in grants} | {
        m for group in (members or {}).values() for m in group
    }
    return PostureReading(
        roles=roles,
        grants=tuple(grants),
        group_members=members or {},
        accounts={p: Account(p, p.title(), synced=p in synced) for p in principals},
        rules=rules if rules is not None else {r: sample_rules() for r in roles},
        break_glass=frozenset(BREAK_GLASS),
        mailboxes=mailboxes,
    )


def base() -> list[Grant]:
    """Two break-glass GAs, one eligible GA, three eligible admins of other roles."""
    return [
        standing("bg-1", GA, outside_pim=False),
        standing("bg-2", GA, outside_pim=False),
        user("ada", GA),
        user("bo", PRA),
        user("cy", UA),
        user("di", UA),
    ]


def result(rows: list[Any], policy_id: str) -> Any:
    return next(r for r in rows if r.policy_id == policy_id)


def alerting(role_rules: dict[str, Any], *rule_ids: str) -> dict[str, Any]:
    changed = copy.deepcopy(role_rules)
    for rule_id in rule_ids:
        changed[rule_id]["notificationRecipients"] = [SECOPS]
    return changed


class TestGlobalAdministrators:
    @pytest.mark.parametrize(
        ("extra", "expected"),
        [(0, PostureResult.passed), (5, PostureResult.passed), (6, PostureResult.failed)],
    )
    def test_two_to_eight(self, extra: int, expected: PostureResult) -> None:
        grants = base() + [user(f"ga-{n}", GA) for n in range(extra)]
        grants += [user(f"other-{n}", UA) for n in range(extra)]
        row = result(evaluate(reading(grants)), "MS.AAD.7.1")
        assert row.result is expected
        assert row.counts["global_administrators"] == 3 + extra
        if expected is PostureResult.failed:
            assert "at most 8" in row.detail
            assert "bg-1" not in {item.id for item in row.items}
            assert len(row.items) == 7

    def test_one_is_too_few(self) -> None:
        row = result(evaluate(reading([standing("bg-1", GA), user("cy", UA)])), "MS.AAD.7.1")
        assert row.result is PostureResult.failed
        assert "at least 2" in row.detail

    def test_members_of_a_role_holding_group_count_once(self) -> None:
        grants = [
            *base(),
            Grant("grp", "group", "GA group", GA, "eligible", True),
            user("ada", GA, kind="active", activated=True, permanent=False),
        ]
        rows = evaluate(reading(grants, members={"grp": ("ada", "eve")}))
        assert result(rows, "MS.AAD.7.1").counts["global_administrators"] == 4


class TestRatio:
    def test_at_most_one_global_administrator_per_other_privileged_user(self) -> None:
        # 3 GAs (2 break-glass) to 3 others: ratio 1 passes; a holder of both counts as GA.
        rows = evaluate(reading([*base(), user("ada", UA)]))
        row = result(rows, "MS.AAD.7.2")
        assert row.result is PostureResult.passed
        assert row.counts == {"global_administrators": 3, "other_privileged_users": 3}
        assert "ratio 1.00" in row.detail

    def test_more_global_administrators_fail(self) -> None:
        row = result(evaluate(reading([*base(), user("eve", GA)])), "MS.AAD.7.2")
        assert row.result is PostureResult.failed
        assert {item.id for item in row.items} == {"ada", "eve"}

    def test_roles_out_of_scope_do_not_count(self) -> None:
        grants = [*base()[:3], user("x", EXCHANGE_ADMINISTRATOR)]
        row = result(evaluate(reading(grants)), "MS.AAD.7.2")
        assert row.result is PostureResult.failed
        assert "no other privileged users" in row.detail


class TestCloudOnly:
    def test_synced_privileged_users_fail_with_their_roles(self) -> None:
        rows = evaluate(reading(base(), synced=("cy", "zed")))
        row = result(rows, "MS.AAD.7.3")
        assert row.result is PostureResult.failed
        assert [(i.id, i.detail) for i in row.items] == [
            ("cy", "onPremisesSyncEnabled; holds User Administrator")
        ]
        assert row.counts == {"privileged_users": 6, "synced": 1}

    def test_cloud_only_passes(self) -> None:
        assert result(evaluate(reading(base())), "MS.AAD.7.3").result is PostureResult.passed


class TestStandingAccess:
    def test_break_glass_is_exempt_and_service_principals_are_counted_apart(self) -> None:
        grants = [
            *base(),
            Grant("sp", "servicePrincipal", "Connector", UA, "active", True, outside_pim=True),
        ]
        rows = evaluate(reading(grants))
        permanent = result(rows, "MS.AAD.7.4")
        assert permanent.result is PostureResult.passed
        assert permanent.counts["break_glass_exempt"] == 2
        assert permanent.counts["service_principals"] == 1
        assert "1 service principal(s) too, not counted" in permanent.detail

    def test_permanent_active_fails_time_bound_and_activations_do_not(self) -> None:
        grants = [
            *base(),
            standing("bo", PRA),
            user("cy", UA, kind="active", permanent=False),
            user("di", UA, kind="active", permanent=False, activated=True),
            Grant("grp", "group", "Helpdesk Admins", PRA, "active", True, outside_pim=True),
        ]
        row = result(evaluate(reading(grants)), "MS.AAD.7.4")
        assert row.result is PostureResult.failed
        assert [(i.name, i.detail) for i in row.items] == [
            ("Bo", "Privileged Role Administrator"),
            ("Helpdesk Admins", "group; Privileged Role Administrator"),
        ]

    def test_assignments_made_outside_pim_fail_break_glass_included(self) -> None:
        grants = [*base(), standing("bo", PRA)]
        grants[0] = standing("bg-1", GA)
        row = result(evaluate(reading(grants)), "MS.AAD.7.5")
        assert row.result is PostureResult.failed
        assert [(i.id, i.detail) for i in row.items] == [
            ("bg-1", "break-glass; Global Administrator"),
            ("bo", "Privileged Role Administrator"),
        ]

    def test_through_pim_passes(self) -> None:
        assert result(evaluate(reading(base())), "MS.AAD.7.5").result is PostureResult.passed


class TestApprovalAndAlerts:
    def test_ga_activation_needs_an_approver(self) -> None:
        rules = {role: sample_rules() for role in (GA, PRA, UA)}
        row = result(evaluate(reading(base(), rules=rules)), "MS.AAD.7.6")
        assert row.result is PostureResult.failed
        setting = rules[GA]["Approval_EndUser_Assignment"]["setting"]
        setting["isApprovalRequired"] = True
        row = result(evaluate(reading(base(), rules=rules)), "MS.AAD.7.6")
        assert row.items[0].detail == "Approval_EndUser_Assignment: no approver named"
        setting["approvalStages"][0]["primaryApprovers"] = [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "g"}
        ]
        row = result(evaluate(reading(base(), rules=rules)), "MS.AAD.7.6")
        assert row.result is PostureResult.passed

    def test_alerts_must_reach_the_security_mailbox(self) -> None:
        ga = alerting(
            sample_rules(),
            "Notification_Admin_Admin_Assignment",
            "Notification_Admin_Admin_Eligibility",
            "Notification_Admin_EndUser_Assignment",
        )
        pra = alerting(sample_rules(), "Notification_Admin_Admin_Assignment")
        rules = {GA: ga, PRA: pra, UA: copy.deepcopy(ga)}
        rules[UA]["Notification_Admin_EndUser_Assignment"]["notificationLevel"] = "None"
        rows = evaluate(reading(base(), rules=rules))
        assert result(rows, "MS.AAD.7.8").result is PostureResult.passed
        assignment = result(rows, "MS.AAD.7.7")
        assert assignment.result is PostureResult.failed
        assert [(i.name, i.detail) for i in assignment.items] == [
            ("Privileged Role Administrator", "does not mail: Notification_Admin_Admin_Eligibility")
        ]
        activation = result(rows, "MS.AAD.7.9")
        assert {i.name for i in activation.items} == {
            "Privileged Role Administrator",
            "User Administrator",
        }
        assert activation.detail == "0 of 2 role(s) mail secops@contoso.com"

    def test_without_a_security_mailbox_any_recipient_will_do(self) -> None:
        ga = alerting(sample_rules(), "Notification_Admin_EndUser_Assignment")
        ga["Notification_Admin_EndUser_Assignment"]["notificationRecipients"] = ["x@fabrikam.com"]
        rows = evaluate(reading(base(), roles=(GA,), rules={GA: ga}, mailboxes=()))
        assert result(rows, "MS.AAD.7.8").result is PostureResult.passed
        assert result(rows, "MS.AAD.7.9").result is PostureResult.not_applicable
        assert summarize(rows)["not_applicable"] == 1


class TestPlanActions:
    def test_the_default_plan_names_its_phases_and_what_it_leaves(self) -> None:
        spec = parse_plan(plan_data())
        roles = [GA, PRA, UA, EXCHANGE_ADMINISTRATOR]
        actions = plan_actions(spec, roles)
        assert actions["MS.AAD.7.6"] == "ga-approval: approval by security_team"
        assert actions["MS.AAD.7.8"] == "pilot: set_notification_rules for Global Administrator"
        assert actions["MS.AAD.7.9"] == (
            "all-admins: set_notification_rules for Privileged Role Administrator, User "
            "Administrator; no alert set for Exchange Administrator"
        )
        assert actions["MS.AAD.7.4"].startswith(
            "convert_cohort in pilot: it_platform_team; convert_cohort in all-admins: every "
            "remaining holder (Active becomes Eligible)"
        )
        assert actions["MS.AAD.7.4"].endswith(
            "not target roles of the plan: Exchange Administrator"
        )
        assert actions["MS.AAD.7.3"].startswith("not addressed by the plan")
        assert actions["MS.AAD.7.1"].startswith("access-reviews: a review every 3 months")
