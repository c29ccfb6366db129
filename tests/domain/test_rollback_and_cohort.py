from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from typing import ClassVar

from app.domain.cohort import MICROSOFT_ACCOUNT_REASON, Holding, select_conversions
from app.domain.rollback import (
    Verdict,
    decide_access_review,
    decide_create_eligibility,
    decide_policy_rule,
    decide_remove_active,
    rollback_order,
)
from app.domain.tenant import AutomationSettings, ProgressionWindow
from app.domain.trust import approver_problems
from app.domain.windows import progression_window
from tests.factories import GA, PRA, USER_ADMIN


@dataclass
class Entry:
    id: int
    operation: str
    target: dict = field(default_factory=dict)


class TestRollbackOrder:
    def test_newest_first_with_blocking_rules_in_front(self) -> None:
        entries = [
            Entry(1, "update_policy_rule", {"rule_id": "Expiration_EndUser_Assignment"}),
            Entry(2, "create_eligibility"),
            Entry(3, "remove_active"),
            Entry(4, "update_policy_rule", {"rule_id": "Enablement_Admin_Assignment"}),
            Entry(5, "create_access_review"),
            Entry(6, "send_mail"),
        ]
        assert [e.id for e in rollback_order(entries)] == [4, 5, 3, 2, 1]


class TestDriftDecisions:
    prior: ClassVar[dict[str, object]] = {"isExpirationRequired": True, "maximumDuration": "PT8H"}
    desired: ClassVar[dict[str, object]] = {"isExpirationRequired": True, "maximumDuration": "PT4H"}

    def test_rule_we_set_is_restored(self) -> None:
        assert (
            decide_policy_rule(prior=self.prior, desired=self.desired, live=self.desired).verdict
            is Verdict.revert
        )

    def test_rule_changed_since_is_drift(self) -> None:
        live = {"isExpirationRequired": True, "maximumDuration": "PT2H"}
        decision = decide_policy_rule(prior=self.prior, desired=self.desired, live=live)
        assert decision.verdict is Verdict.drift

    def test_rule_already_back(self) -> None:
        assert (
            decide_policy_rule(prior=self.prior, desired=self.desired, live=self.prior).verdict
            is Verdict.not_needed
        )

    def test_eligibility_we_created(self) -> None:
        assert (
            decide_create_eligibility(live_schedule_id="s1", created_schedule_id="s1").verdict
            is Verdict.revert
        )
        assert (
            decide_create_eligibility(live_schedule_id=None, created_schedule_id="s1").verdict
            is Verdict.drift
        )
        assert (
            decide_create_eligibility(live_schedule_id="s2", created_schedule_id="s1").verdict
            is Verdict.drift
        )

    def test_active_restored_unless_back(self) -> None:
        assert decide_remove_active(active_now=False).verdict is Verdict.revert
        assert decide_remove_active(active_now=True).verdict is Verdict.not_needed

    def test_review(self) -> None:
        assert decide_access_review(exists=True).verdict is Verdict.revert
        assert decide_access_review(exists=False).verdict is Verdict.drift


def _holding(
    principal: str, role: str, kind: str = "user", name: str | None = None, member: str = "Direct"
) -> Holding:
    return Holding(
        principal, kind, role, "/", f"a-{principal}-{role}", name or principal, None, member
    )


class TestCohortSelection:
    def test_roles_in_plan_order_and_break_glass_excluded(self) -> None:
        holdings = [
            _holding("bob", USER_ADMIN),
            _holding("bg1", GA),
            _holding("amy", GA),
            _holding("app", USER_ADMIN, "servicePrincipal"),
            _holding("zed", "4a5d8f65-41da-4de4-8968-e035b65339cf"),
            _holding("via-group", GA, member="Group"),
        ]
        selected, excluded = select_conversions(
            holdings, roles_in_order=[GA, USER_ADMIN], cohort=None, break_glass={"bg1"}
        )
        assert [(s.holding.principal_id, s.skip_reason is None) for s in selected] == [
            ("amy", True),
            ("app", False),
            ("bob", True),
        ]
        assert [e.holding.principal_id for e in excluded] == ["bg1"]

    def test_cohort_restricts_and_break_glass_wins(self) -> None:
        holdings = [_holding("amy", GA), _holding("bob", GA), _holding("bg1", GA)]
        selected, excluded = select_conversions(
            holdings, roles_in_order=[GA], cohort={"amy", "bg1"}, break_glass={"bg1"}
        )
        assert [s.holding.principal_id for s in selected] == ["amy"]
        assert [e.reason for e in excluded] == ["break-glass account: stays permanent Active"]

    def test_personal_microsoft_account_stays_permanent(self) -> None:
        consumer = replace(_holding("guest", GA), microsoft_account=True)
        selected, excluded = select_conversions(
            [_holding("amy", GA), consumer], roles_in_order=[GA], cohort=None, break_glass=set()
        )
        reasons = {s.holding.principal_id: s.skip_reason for s in selected}
        assert reasons["amy"] is None
        assert reasons["guest"] == MICROSOFT_ACCOUNT_REASON
        assert excluded == []


class TestTrust:
    def test_approver_who_holds_the_role(self) -> None:
        problems = approver_problems(
            role_id=GA,
            approvers={"a", "b"},
            min_approvers=2,
            holders={"b", "c"},
            names={"b": "Bea"},
        )
        assert len(problems) == 1
        assert "Bea would approve Global Administrator" in problems[0].message

    def test_too_few_approvers(self) -> None:
        problems = approver_problems(role_id=PRA, approvers={"a"}, min_approvers=2, holders=set())
        assert "at least 2 approvers" in problems[0].message


class TestWindows:
    settings = AutomationSettings(
        timezone="Europe/Amsterdam",
        windows=[ProgressionWindow(days=["tue", "wed"], start=time(9), end=time(17))],
    )

    def test_inside(self) -> None:
        assert progression_window(self.settings, datetime(2026, 3, 3, 10, 0, tzinfo=UTC)).open

    def test_outside_names_the_next_window(self) -> None:
        verdict = progression_window(self.settings, datetime(2026, 3, 3, 17, 30, tzinfo=UTC))
        assert not verdict.open
        assert verdict.next_open == datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
        assert "Wed 2026-03-04 09:00 Europe/Amsterdam" in (verdict.reason or "")

    def test_frozen(self) -> None:
        frozen = self.settings.model_copy(update={"frozen": True})
        verdict = progression_window(frozen, datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
        assert not verdict.open
        assert "frozen" in (verdict.reason or "")

    def test_no_windows_means_always(self) -> None:
        assert progression_window(AutomationSettings(), datetime(2026, 3, 8, 3, 0, tzinfo=UTC)).open
