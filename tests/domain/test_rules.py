"""Plan settings -> PIM policy rules, as Graph expects them (whole rule sent back)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.domain.plan import NotificationRuleSetting, RoleSettings
from app.domain.rules import (
    APPROVAL_END_USER,
    ENABLEMENT_END_USER,
    EXPIRATION_END_USER,
    RuleConflictError,
    admin_mfa_blockers,
    approval_signature,
    desired_activation_rules,
    desired_approval_rule,
    desired_notification_rules,
    eligibility_expiration,
    notification_reaches,
    same_rule,
)
from tests.fixtures import GRAPH_SAMPLES

SAMPLES = GRAPH_SAMPLES


@pytest.fixture
def rules() -> dict[str, dict]:
    data = json.loads(
        (
            SAMPLES
            / "roleManagementPolicyAssignments_list_filterRole_expandPolicyRules.response.json"
        ).read_text()
    )
    return {rule["id"]: rule for rule in data["value"][0]["policy"]["rules"]}


class TestActivationRules:
    def test_pilot_settings_change_duration_and_enablement(self, rules) -> None:
        settings = RoleSettings(
            activation_max_duration=timedelta(hours=4),
            require_justification=True,
            require_ticket=False,
            require_mfa=True,
        )
        changes = desired_activation_rules(rules, settings)
        assert set(changes) == {EXPIRATION_END_USER}  # the sample already has MFA + justification
        rule = changes[EXPIRATION_END_USER]
        assert rule["maximumDuration"] == "PT4H"
        assert rule["isExpirationRequired"] is True
        assert rule["@odata.type"] == "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
        assert rule["target"] == rules[EXPIRATION_END_USER]["target"]

    def test_ticket_added_in_a_stable_order(self, rules) -> None:
        changes = desired_activation_rules(rules, RoleSettings(require_ticket=True))
        assert changes[ENABLEMENT_END_USER]["enabledRules"] == [
            "MultiFactorAuthentication",
            "Justification",
            "Ticketing",
        ]

    def test_nothing_to_change(self, rules) -> None:
        assert (
            desired_activation_rules(
                rules, RoleSettings(activation_max_duration=timedelta(hours=8))
            )
            == {}
        )

    def test_mfa_conflicts_with_auth_context(self, rules) -> None:
        rules["AuthenticationContext_EndUser_Assignment"]["isEnabled"] = True
        with pytest.raises(RuleConflictError, match="MfaAndAcrsConflict"):
            desired_activation_rules(rules, RoleSettings(require_mfa=True))

    def test_durations_compare_by_value(self, rules) -> None:
        other = dict(rules[EXPIRATION_END_USER], maximumDuration="PT480M")
        assert same_rule(other, rules[EXPIRATION_END_USER])


class TestApprovalRule:
    def test_group_approvers(self, rules) -> None:
        rule = desired_approval_rule(
            rules, approvers=[("group", "g1")], timeout_days=1, approver_justification=True
        )
        assert rule is not None
        assert rule["setting"]["isApprovalRequired"] is True
        assert rule["setting"]["approvalStages"][0]["primaryApprovers"] == [
            {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "g1"}
        ]
        assert approval_signature(rule) == {
            "required": True,
            "approvers": [("#microsoft.graph.groupMembers", "g1")],
        }
        assert (
            desired_approval_rule(
                {APPROVAL_END_USER: rule},
                approvers=[("group", "g1")],
                timeout_days=1,
                approver_justification=True,
            )
            is None
        )


class TestEligibilityExpiration:
    def test_permanent_when_allowed(self, rules) -> None:
        assert eligibility_expiration(rules, None) == (None, None)

    def test_respects_a_rule_that_requires_expiry(self, rules) -> None:
        rules["Expiration_Admin_Eligibility"]["isExpirationRequired"] = True
        duration, note = eligibility_expiration(rules, None)
        assert duration == timedelta(days=365)
        assert note is not None
        assert "P365D" in note

    def test_caps_a_longer_wish(self, rules) -> None:
        rules["Expiration_Admin_Eligibility"]["isExpirationRequired"] = True
        duration, note = eligibility_expiration(rules, timedelta(days=500))
        assert duration == timedelta(days=365)
        assert note is not None


class TestAdminMfa:
    def test_detects_rules_an_app_cannot_satisfy(self, rules) -> None:
        assert admin_mfa_blockers(rules) == []
        rules["Enablement_Admin_Assignment"]["enabledRules"] = [
            "Justification",
            "MultiFactorAuthentication",
        ]
        assert admin_mfa_blockers(rules) == ["Enablement_Admin_Assignment"]


class TestNotificationRules:
    SECOPS = "secops@contoso.com"

    def test_adds_the_mailbox_at_the_wanted_level_keeping_other_recipients(self, rules) -> None:
        rules["Notification_Admin_Admin_Assignment"]["notificationRecipients"] = ["it@contoso.com"]
        changes = desired_notification_rules(
            rules,
            [
                NotificationRuleSetting(id="Notification_Admin_Admin_Assignment"),
                NotificationRuleSetting(
                    id="Notification_Admin_EndUser_Assignment",
                    level="Critical",
                    default_recipients=False,
                ),
            ],
            [self.SECOPS],
        )
        assignment = changes["Notification_Admin_Admin_Assignment"]
        assert assignment["notificationRecipients"] == ["it@contoso.com", self.SECOPS]
        assert assignment["@odata.type"].endswith("NotificationRule")
        assert assignment["target"] == rules["Notification_Admin_Admin_Assignment"]["target"]
        activation = changes["Notification_Admin_EndUser_Assignment"]
        assert activation["notificationLevel"] == "Critical"
        assert activation["isDefaultRecipientsEnabled"] is False
        assert not same_rule(activation, rules["Notification_Admin_EndUser_Assignment"])

    def test_a_rule_that_already_mails_the_mailbox_is_left_alone(self, rules) -> None:
        rules["Notification_Admin_Admin_Eligibility"]["notificationRecipients"] = [
            "SecOps@Contoso.com"
        ]
        wanted = [NotificationRuleSetting(id="Notification_Admin_Admin_Eligibility")]
        assert desired_notification_rules(rules, wanted, [self.SECOPS]) == {}

    def test_reaches(self, rules) -> None:
        rule = dict(rules["Notification_Admin_EndUser_Assignment"])
        assert not notification_reaches(rule, [self.SECOPS])
        assert not notification_reaches(rule, [])
        rule["notificationRecipients"] = [self.SECOPS]
        assert notification_reaches(rule, [self.SECOPS])
        assert notification_reaches(rule, [])
        assert not notification_reaches(rule, [self.SECOPS, "soc@contoso.com"])
        rule["notificationLevel"] = "None"
        assert not notification_reaches(rule, [self.SECOPS])
