"""Plan validation: each refusal names the field path and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.validation import PlanInvalidError, parse_plan
from tests.factories import GA, PRA, plan_data


def _problems(data: Any) -> dict[str, str]:
    with pytest.raises(PlanInvalidError) as caught:
        parse_plan(data)
    return {p.path: p.message for p in caught.value.problems}


class TestShippedPlans:
    @pytest.mark.parametrize("name", ["default", "demo"])
    def test_shipped_plans_are_valid(self, name: str) -> None:
        spec = parse_plan(plan_data(name))
        assert [p.key for p in spec.phases] == [
            "pilot",
            "feedback",
            "all-admins",
            "ga-approval",
            "access-reviews",
        ]
        assert [p.gate.value for p in spec.phases] == ["auto", "manual", "auto", "manual", "auto"]

    def test_default_follows_the_playbook_schedule_and_role_order(self) -> None:
        spec = parse_plan(plan_data("default"))
        assert [p.starts_after.days for p in spec.phases] == [0, 7, 14, 21, 30]
        assert [str(r.id) for r in spec.roles[:4]] == [
            GA,
            "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
            "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
            "fe930be7-5e62-47db-91af-98c3a49a38b1",
        ]

    def test_demo_is_the_same_plan_in_seconds(self) -> None:
        default, demo = parse_plan(plan_data("default")), parse_plan(plan_data("demo"))
        assert [p.key for p in demo.phases] == [p.key for p in default.phases]
        assert [p.steps for p in demo.phases] == [p.steps for p in default.phases]
        assert all(p.starts_after.total_seconds() < 300 for p in demo.phases)


class TestRefusals:
    def test_unknown_role_id(self) -> None:
        data = plan_data()
        data["roles"][1]["id"] = "00000000-0000-0000-0000-000000000000"
        problems = _problems(data)
        assert "unknown role id" in problems["roles[1].id"]

    def test_role_listed_twice(self) -> None:
        data = plan_data()
        data["roles"].append({"id": GA})
        assert "listed twice" in _problems(data)[f"roles[{len(data['roles']) - 1}].id"]

    def test_step_role_not_a_target(self) -> None:
        data = plan_data()
        data["phases"][0]["steps"][0]["roles"] = ["4a5d8f65-41da-4de4-8968-e035b65339cf"]
        assert (
            "not one of the plan's target roles" in _problems(data)["phases[0].steps[0].roles[0]"]
        )

    def test_duplicate_phase_keys(self) -> None:
        data = plan_data()
        data["phases"][2]["key"] = "pilot"
        assert "duplicate phase key 'pilot'" in _problems(data)["phases[2].key"]

    def test_schedule_going_backwards(self) -> None:
        data = plan_data()
        data["phases"][3]["starts_after"] = "P10D"
        message = _problems(data)["phases[3].starts_after"]
        assert "P10D is earlier than phases[2] (P14D)" in message

    @pytest.mark.parametrize(
        ("value", "reason"), [("PT25H", "at most 24 hours"), ("PT29M", "at least 30 minutes")]
    )
    def test_activation_duration_bounds(self, value: str, reason: str) -> None:
        data = plan_data()
        data["phases"][1]["steps"][0]["settings"]["activation_max_duration"] = value
        assert reason in _problems(data)["phases[1].steps[0].settings.activation_max_duration"]

    def test_eligible_expiration_shorter_than_graphs_minimum(self) -> None:
        data = plan_data()
        data["roles"][0]["settings"] = {"eligible_expiration": "PT4M"}
        data["phases"][1]["steps"][0]["settings"]["eligible_expiration"] = "PT5M"
        problems = _problems(data)
        assert "at least 5 minutes" in problems["roles[0].settings.eligible_expiration"]
        assert "phases[1].steps[0].settings.eligible_expiration" not in problems

    def test_ga_approval_with_one_approver(self) -> None:
        data = plan_data()
        data["phases"][3]["steps"][0]["rules"][0]["min_approvers"] = 1
        message = _problems(data)["phases[3].steps[0].rules[0].min_approvers"]
        assert "at least 2 approvers" in message

    def test_ga_approval_with_a_single_named_user(self) -> None:
        data = plan_data()
        data["phases"][3]["steps"][0]["rules"][0]["approvers"] = [
            {"user": "77777777-7777-4777-8777-777777777777"}
        ]
        assert "2 distinct approvers" in _problems(data)["phases[3].steps[0].rules[0].approvers"]

    def test_circular_trust_approver_is_the_cohort(self) -> None:
        data = plan_data()
        data["phases"][3]["steps"][0]["rules"][0]["approvers"] = [{"binding": "it_platform_team"}]
        message = _problems(data)["phases[3].steps[0].rules[0].approvers[0]"]
        assert message.startswith("circular trust: it_platform_team approves Global Administrator")

    def test_circular_trust_by_explicit_principal(self) -> None:
        data = plan_data()
        person = "77777777-7777-4777-8777-777777777777"
        data["phases"][0]["steps"][1]["cohort"] = {"principals": [person]}
        data["phases"][3]["steps"][0]["rules"][1]["approvers"] = [{"user": person}]
        data["phases"][3]["steps"][0]["rules"][1]["roles"] = [PRA]
        message = _problems(data)["phases[3].steps[0].rules[1].approvers[0]"]
        assert "circular trust" in message
        assert "Privileged Role Administrator" in message

    def test_unknown_field_and_bad_step_kind(self) -> None:
        data = plan_data()
        data["phases"][0]["colour"] = "blue"
        data["phases"][1]["steps"][0]["kind"] = "make_coffee"
        problems = _problems(data)
        assert problems["phases[0].colour"] == "unknown field"
        assert "make_coffee" in problems["phases[1].steps[0]"] or any(
            "phases[1].steps[0]" in path for path in problems
        )

    def test_settings_after_conversion_in_a_phase(self) -> None:
        data = plan_data()
        steps = data["phases"][0]["steps"]
        steps[0], steps[1] = steps[1], steps[0]
        assert "must come before convert_cohort" in _problems(data)["phases[0].steps[1]"]

    def test_comms_without_conversion(self) -> None:
        data = plan_data()
        data["phases"][1]["steps"].append({"kind": "send_comms"})
        assert "convert_cohort" in _problems(data)["phases[1].steps[1]"]

    def test_cohort_must_choose_one_source(self) -> None:
        data = plan_data()
        data["phases"][0]["steps"][1]["cohort"] = {"binding": "x", "remaining": True}
        assert "exactly one" in _problems(data)["phases[0].steps[1].cohort"]

    def test_not_a_mapping(self) -> None:
        assert _problems(["a", "list"]) == {"(plan)": "a plan must be a mapping of fields"}

    def test_every_problem_is_reported_at_once(self) -> None:
        data = plan_data()
        data["phases"][2]["key"] = "pilot"
        data["phases"][3]["starts_after"] = "P1D"
        data["roles"][0]["id"] = "00000000-0000-0000-0000-000000000000"
        assert len(_problems(data)) >= 3


class TestNotificationRules:
    """``set_notification_rules``: rule ids, levels and mailboxes are checked at load."""

    PILOT_ALERTS = "phases[0].steps[3]"

    def _step(self, data: dict[str, Any]) -> dict[str, Any]:
        step: dict[str, Any] = data["phases"][0]["steps"][3]
        assert step["kind"] == "set_notification_rules"
        return step

    def test_pilot_alerts_global_administrator_and_all_admins_the_other_roles(self) -> None:
        spec = parse_plan(plan_data())
        pilot, all_admins = spec.phases[0].steps[3], spec.phases[2].steps[2]
        assert pilot.kind == all_admins.kind == "set_notification_rules"
        assert [str(r) for r in pilot.roles or []] == [GA]
        others = {str(r) for r in all_admins.roles or []}
        assert others == {str(r.id) for r in spec.roles} - {GA}
        assert [r.id for r in pilot.rules] == [
            "Notification_Admin_Admin_Assignment",
            "Notification_Admin_Admin_Eligibility",
            "Notification_Admin_EndUser_Assignment",
        ]
        assert [ref.binding for ref in pilot.recipients] == ["security_team_mailbox"]

    def test_unknown_rule_id(self) -> None:
        data = plan_data()
        self._step(data)["rules"] = [{"id": "Notification_Auditor_Admin_Assignment"}]
        message = _problems(data)[f"{self.PILOT_ALERTS}.rules[0].id"]
        assert message.startswith(
            "unknown notification rule 'Notification_Auditor_Admin_Assignment'"
        )

    def test_bad_level(self) -> None:
        data = plan_data()
        self._step(data)["rules"] = [{"id": "Notification_Admin_Admin_Assignment", "level": "Loud"}]
        assert (
            "'All', 'Critical' or 'None'" in _problems(data)[f"{self.PILOT_ALERTS}.rules[0].level"]
        )

    def test_level_none_sends_the_recipients_nothing(self) -> None:
        data = plan_data()
        self._step(data)["rules"] = [{"id": "Notification_Admin_Admin_Assignment", "level": "None"}]
        assert "sends no mail" in _problems(data)[f"{self.PILOT_ALERTS}.rules[0].level"]

    def test_rule_listed_twice(self) -> None:
        data = plan_data()
        rule = {"id": "Notification_Admin_EndUser_Assignment"}
        self._step(data)["rules"] = [rule, rule]
        assert "listed twice" in _problems(data)[f"{self.PILOT_ALERTS}.rules[1].id"]

    @pytest.mark.parametrize("address", ["secops", "secops@contoso", "sec ops@contoso.com", ""])
    def test_bad_mailbox_address(self, address: str) -> None:
        data = plan_data()
        self._step(data)["recipients"] = [{"address": address}]
        message = _problems(data)[f"{self.PILOT_ALERTS}.recipients[0]"]
        assert "is not an e-mail address" in message

    def test_recipient_is_a_binding_or_an_address(self) -> None:
        data = plan_data()
        self._step(data)["recipients"] = [
            {"binding": "security_team_mailbox", "address": "a@contoso.com"}
        ]
        message = _problems(data)[f"{self.PILOT_ALERTS}.recipients[0]"]
        assert "exactly one of binding or address" in message

    def test_role_not_a_target(self) -> None:
        data = plan_data()
        self._step(data)["roles"] = ["4a5d8f65-41da-4de4-8968-e035b65339cf"]
        message = _problems(data)[f"{self.PILOT_ALERTS}.roles[0]"]
        assert "not one of the plan's target roles" in message
