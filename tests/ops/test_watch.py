"""``plans get --watch``: redraws until the plan settles, says how, exits 4 if it failed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ops.fakes import PLAN_ID, FakeApi, invoke, phase_json, plan_json, problem

PLAN = f"/api/v1/plans/{PLAN_ID}"


def moving() -> dict[str, Any]:
    return plan_json(phases=[phase_json("pilot", "running", done=1, total=5)])


class TestWatch:
    def test_stops_at_a_manual_gate_and_says_which(self) -> None:
        api = FakeApi()
        at_gate = plan_json(
            phases=[
                phase_json("pilot", "completed", done=5, total=5),
                phase_json("feedback", "awaiting_gate", gate="manual"),
            ]
        )
        api.on("GET", PLAN, moving(), moving(), at_gate)
        result = invoke(api, "plans", "get", PLAN_ID, "--watch", "--interval", "0.1")
        assert result.exit_code == 0, result.output
        assert len(api.requests) == 3
        assert "awaiting the manual gate of phase 'feedback'" in result.stdout
        assert f"pim-rollout plans advance {PLAN_ID} --phase feedback" in result.stdout
        assert "5/5 done" in result.stdout

    def test_an_automatic_gate_keeps_watching(self) -> None:
        api = FakeApi()
        held = plan_json(
            phases=[
                phase_json("pilot", "completed", done=5, total=5),
                phase_json("all-admins", "awaiting_gate", reason="health gate: drift"),
            ]
        )
        api.on("GET", PLAN, held, held, plan_json(state="completed"))
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 0, result.output
        assert len(api.requests) == 3
        assert f"plan {PLAN_ID} is completed" in result.stdout

    @pytest.mark.parametrize(
        ("state", "said"),
        [
            ("paused", "is paused: resume it"),
            ("rolled_back", "is rolled back"),
            ("cancelled", "is cancelled"),
            ("draft", "is a draft: start it"),
        ],
    )
    def test_other_settled_states_exit_0(self, state: str, said: str) -> None:
        api = FakeApi()
        api.on("GET", PLAN, moving(), plan_json(state=state))
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 0, result.output
        assert said in result.stdout

    def test_a_failed_plan_exits_4_with_the_phase_reason(self) -> None:
        api = FakeApi()
        failed = plan_json(
            state="failed",
            phases=[phase_json("pilot", "failed", done=2, total=5, reason="3 item(s) failed")],
        )
        api.on("GET", PLAN, moving(), failed)
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 4, result.output
        assert "failed (pilot: 3 item(s) failed)" in result.stdout

    def test_json_prints_the_settled_plan_and_the_outcome_on_stderr(self) -> None:
        api = FakeApi()
        done = plan_json(state="completed")
        api.on("GET", PLAN, moving(), done)
        result = invoke(api, "plans", "get", PLAN_ID, "--watch", "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == done
        assert result.stderr.strip() == f"pim-rollout: plan {PLAN_ID} is completed"

    def test_a_server_that_comes_back_is_waited_for(self) -> None:
        api = FakeApi()
        away = problem(503, "Temporarily unavailable", "restarting")
        api.on("GET", PLAN, moving(), away, away, plan_json(state="completed"))
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 0, result.output

    def test_a_server_that_stays_away_exits_3(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, moving(), problem(503, "Temporarily unavailable", "restarting"))
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 3, result.output
        assert len(api.requests) == 1 + 5
        assert "restarting" in result.stderr

    def test_a_refusal_while_watching_is_not_retried(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, moving(), problem(404, "Not found", "no plan"))
        result = invoke(api, "plans", "get", PLAN_ID, "--watch")
        assert result.exit_code == 1
        assert len(api.requests) == 2
