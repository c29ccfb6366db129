"""Exit codes scripts rely on, and what each failure prints (never the token)."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import Result

from tests.ops.fakes import PLAN_ID, TOKEN, FakeApi, invoke, plan_json, problem

PLAN = f"/api/v1/plans/{PLAN_ID}"


def assert_no_token(result: Result) -> None:
    assert TOKEN not in result.stdout
    assert TOKEN not in result.stderr


class TestRefused:
    def test_a_refused_action_prints_the_problem_and_exits_1(self) -> None:
        api = FakeApi()
        api.on(
            "POST",
            f"{PLAN}/advance",
            problem(
                409,
                "That action does not apply now",
                "advance does not apply to a plan that is completed",
                current_state="completed",
                allowed_events=["rollback"],
            ),
        )
        result = invoke(api, "plans", "advance", PLAN_ID, "--phase", "feedback")
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.startswith(f"pim-rollout: POST {PLAN}/advance: 409 ")
        assert "advance does not apply to a plan that is completed" in result.stderr
        assert "(state: completed; allowed: rollback)" in result.stderr
        assert_no_token(result)

    def test_invalid_input_names_each_field(self) -> None:
        api = FakeApi()
        api.on(
            "POST",
            f"{PLAN}/pause",
            problem(
                422,
                "Invalid input",
                "the request is invalid",
                errors=[{"path": "reason", "message": "at most 2000 characters"}],
            ),
        )
        result = invoke(api, "plans", "pause", PLAN_ID, "--reason", "x")
        assert result.exit_code == 1
        assert "  reason: at most 2000 characters" in result.stderr

    def test_unknown_plan(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, problem(404, "Not found", f"no plan {PLAN_ID}"))
        result = invoke(api, "plans", "get", PLAN_ID)
        assert result.exit_code == 1
        assert f"404 Not found: no plan {PLAN_ID}" in result.stderr


class TestUnauthorized:
    def test_a_token_the_server_refuses_exits_5(self) -> None:
        api = FakeApi()
        api.on("GET", "/api/v1/plans", problem(401, "Authentication required", "unknown token"))
        result = invoke(api, "plans", "list")
        assert result.exit_code == 5
        assert "the server does not accept this token" in result.stderr
        assert_no_token(result)
        (sent,) = api.requests
        assert sent.headers["authorization"] == f"Bearer {TOKEN}"

    def test_no_token_says_how_to_give_one(self) -> None:
        api = FakeApi()
        api.on("GET", "/api/v1/tenants", problem(401, "Authentication required", "no token"))
        result = invoke(api, "tenants", "list", token=None)
        assert result.exit_code == 5
        assert "no token was given: set --token or PIM_ROLLOUT_TOKEN" in result.stderr
        assert "authorization" not in api.requests[0].headers

    def test_a_role_too_low_exits_5(self) -> None:
        api = FakeApi()
        api.on(
            "POST", f"{PLAN}/rollback", problem(403, "Not allowed for this role", "needs operator")
        )
        result = invoke(api, "plans", "rollback", PLAN_ID, "--reason", "undo")
        assert result.exit_code == 5
        assert "403 Not allowed for this role: needs operator" in result.stderr
        assert_no_token(result)


class TestUnreachable:
    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_exit_3(self, status: int) -> None:
        api = FakeApi()
        api.on("GET", PLAN, problem(status, "Temporarily unavailable", "the database is away"))
        result = invoke(api, "plans", "get", PLAN_ID)
        assert result.exit_code == 3
        assert f"{status} Temporarily unavailable: the database is away" in result.stderr

    def test_an_html_error_page_is_summarised(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, httpx.Response(502, text="<html><body>Bad gateway</body></html>"))
        result = invoke(api, "plans", "get", PLAN_ID)
        assert result.exit_code == 3
        assert "502 Bad Gateway: <html><body>Bad gateway</body></html>" in result.stderr

    @pytest.mark.parametrize(
        ("error", "said"),
        [
            (httpx.ConnectError("[Errno 111] Connection refused"), "cannot reach http://pim.test"),
            (httpx.ReadTimeout("timed out"), "did not answer GET /api/v1/plans in time"),
        ],
    )
    def test_a_server_out_of_reach_exits_3(self, error: Exception, said: str) -> None:
        def fail(request: httpx.Request) -> httpx.Response:
            raise error

        result = invoke(httpx.MockTransport(fail), "plans", "list")
        assert result.exit_code == 3
        assert said in result.stderr
        assert_no_token(result)

    def test_an_answer_that_is_not_json(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, httpx.Response(200, text="<html>login</html>"))
        result = invoke(api, "plans", "get", PLAN_ID)
        assert result.exit_code == 3
        assert "not JSON" in result.stderr


class TestUsage:
    @pytest.mark.parametrize(
        "args",
        [
            ("plans", "get"),
            ("plans", "list", "--output", "yaml"),
            ("plans", "nope"),
            ("tenants", "get", "x", "--server", "ftp://pim.test"),
            ("plans", "start", "x", "--wait", "601"),
        ],
    )
    def test_usage_errors_exit_2_and_send_nothing(self, args: tuple[str, ...]) -> None:
        api = FakeApi()
        result = invoke(api, *args)
        assert result.exit_code == 2, result.output
        assert api.requests == []


class TestEnvironment:
    def test_server_and_token_come_from_the_environment(self) -> None:
        api = FakeApi()
        api.on("GET", PLAN, plan_json())
        result = invoke(
            api,
            "plans",
            "get",
            PLAN_ID,
            token=None,
            env={"PIM_ROLLOUT_SERVER": "http://elsewhere.test:9000", "PIM_ROLLOUT_TOKEN": TOKEN},
        )
        assert result.exit_code == 0, result.output
        (sent,) = api.requests
        assert str(sent.url) == f"http://elsewhere.test:9000{PLAN}"
        assert sent.headers["authorization"] == f"Bearer {TOKEN}"
        assert_no_token(result)
