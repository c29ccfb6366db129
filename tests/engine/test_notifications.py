"""Alert rules in the plan: ``set_notification_rules`` journals each PATCH with the rule it
replaced, and rollback puts every rule back exactly as it was."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.db.repos.journal import JournalRepository
from app.domain.journal import EntryStatus, Operation
from app.engine.actions import start
from tests.engine.conftest import Rig
from tests.engine.test_rollback import drive, graph
from tests.factories import GA, USER_ADMIN, plan_data

ALERT_RULES = (
    "Notification_Admin_Admin_Assignment",
    "Notification_Admin_Admin_Eligibility",
    "Notification_Admin_EndUser_Assignment",
)
MAILBOX = "security-alerts@contoso.com"


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (120, 16)


def alerts_spec(**step: Any) -> dict[str, Any]:
    data = plan_data()
    data["name"] = "alerts"
    data["phases"] = [
        {
            "key": "alerts",
            "title": "Alert the security team",
            "starts_after": "PT0S",
            "steps": [
                {
                    "kind": "set_notification_rules",
                    "roles": [GA, USER_ADMIN],
                    "recipients": [{"binding": "security_team_mailbox"}],
                    **step,
                }
            ],
        }
    ]
    return data


def rules(rig: Rig, role_id: str) -> dict[str, dict[str, Any]]:
    return copy.deepcopy(rig.sim_state.policy_for_role(role_id).rules)


async def run(rig: Rig, data: dict[str, Any]) -> str:
    plan_id = rig.create_plan(spec=data)
    await start(rig.ectx, plan_id=plan_id, actor="tester", reason=None, expected_version=None)
    return plan_id


class TestSetNotificationRules:
    async def test_mails_the_security_mailbox_and_rolls_back_exactly(self, rig: Rig) -> None:
        # Someone already mails the IT lead on GA assignments: kept, and restored as it was.
        rig.sim_state.policy_for_role(GA).rules["Notification_Admin_Admin_Assignment"][
            "notificationRecipients"
        ] = ["it-lead@contoso.com"]
        before = {role: rules(rig, role) for role in (GA, USER_ADMIN)}

        plan_id = await run(rig, alerts_spec())
        view = await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        assert view.row.state == "completed", view.row.status_reason

        ga = rules(rig, GA)
        assert ga["Notification_Admin_Admin_Assignment"]["notificationRecipients"] == [
            "it-lead@contoso.com",
            MAILBOX,
        ]
        for role in (GA, USER_ADMIN):
            now = rules(rig, role)
            for rule_id in ALERT_RULES:
                assert MAILBOX in now[rule_id]["notificationRecipients"], (role, rule_id)
                assert now[rule_id]["notificationLevel"] == "All"
            # Rules the step does not name are untouched.
            assert (
                now["Notification_Requestor_Admin_Assignment"]
                == (before[role]["Notification_Requestor_Admin_Assignment"])
            )
        with rig.session_factory() as session:
            entries = JournalRepository(session).list_for_plan(plan_id)
        changed = [e for e in entries if e.operation == Operation.update_policy_rule]
        assert len(changed) == 6
        assert all(e.status == EntryStatus.applied for e in changed)
        first = next(
            e
            for e in changed
            if e.target["role_id"] == GA
            and e.target["rule_id"] == "Notification_Admin_Admin_Assignment"
        )
        assert first.prior_state is not None
        assert first.desired_state is not None
        assert first.prior_state["notificationRecipients"] == ["it-lead@contoso.com"]
        assert first.desired_state["notificationRecipients"] == ["it-lead@contoso.com", MAILBOX]

        rig.act(plan_id, "rollback", reason="undo")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back", view.row.status_reason
        assert {role: rules(rig, role) for role in (GA, USER_ADMIN)} == before

    async def test_running_it_again_changes_nothing(self, rig: Rig) -> None:
        first = await run(rig, alerts_spec())
        await drive(rig, rig.ectx, first, {"completed"})
        second = await run(rig, {**alerts_spec(), "name": "alerts-again"})
        view = await drive(rig, rig.ectx, second, {"completed"})
        assert view.row.state == "completed"
        with rig.session_factory() as session:
            assert JournalRepository(session).list_for_plan(second) == []

    async def test_a_rule_changed_since_is_left_alone_by_rollback(self, rig: Rig) -> None:
        plan_id = await run(rig, alerts_spec(roles=[GA]))
        await drive(rig, rig.ectx, plan_id, {"completed"})
        policy_id = rig.sim_state.policy_for_role(GA).id
        rule_id = "Notification_Admin_EndUser_Assignment"
        theirs = {**rules(rig, GA)[rule_id], "notificationRecipients": ["soc@fabrikam.com"]}
        await graph(
            rig,
            "PATCH",
            f"/policies/roleManagementPolicies/{policy_id}/rules/{rule_id}",
            json=theirs,
        )
        rig.act(plan_id, "rollback", reason="undo")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back"
        assert rules(rig, GA)[rule_id]["notificationRecipients"] == ["soc@fabrikam.com"]
        assert rules(rig, GA)["Notification_Admin_Admin_Assignment"]["notificationRecipients"] == []
        assert "drift" in (view.phases[0].row.status_reason or "")

    async def test_a_refused_patch_fails_the_phase_with_graphs_reason(self, rig: Rig) -> None:
        plan_id = await run(rig, alerts_spec())
        # Taken away after preflight checked it: Graph answers the PATCH with 403.
        rig.sim_state.granted_permissions.discard("RoleManagementPolicy.ReadWrite.Directory")
        view = await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        assert view.row.state == "failed"
        reason = view.row.status_reason or ""
        assert "Global Administrator: Notification_Admin_Admin_Assignment" in reason
        assert "PermissionScopeNotGranted" in reason
