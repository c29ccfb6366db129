"""What the HTTP commands send and print: tables for people, the API's JSON for scripts,
jobs followed to their end, and a posture report from a server that may not have one."""

from __future__ import annotations

import json

import httpx

from tests.ops.fakes import (
    PLAN_ID,
    TENANT_ID,
    FakeApi,
    invoke,
    job_json,
    phase_json,
    plan_json,
    problem,
)

PLAN = f"/api/v1/plans/{PLAN_ID}"
TENANT = f"/api/v1/tenants/{TENANT_ID}"
TENANTS = [
    {
        "id": TENANT_ID,
        "name": "Contoso",
        "graph_base_url": "https://graph.microsoft.com/v1.0",
        "auth": {"kind": "client_secret", "tenant_id": "t", "client_id": "c", "has_secret": True},
        "break_glass_ids": ["bg-1", "bg-2"],
        "bindings": {"it_platform_team": {"kind": "group", "id": "g-1"}},
        "comms": {"sender": "pim@contoso.test", "helpdesk": {"name": "Service Desk"}},
        "automation": {"timezone": "Europe/Paris", "windows": [], "frozen": False},
        "graph_limits": {},
        "created_at": "2026-03-01T09:00:00+00:00",
        "updated_at": "2026-03-02T09:00:00+00:00",
    }
]
INVENTORY = {
    "id": 7,
    "tenant_id": TENANT_ID,
    "plan_id": None,
    "taken_at": "2026-03-09T14:00:00+00:00",
    "finished_at": "2026-03-09T14:00:05+00:00",
    "item_count": 42,
    "by_role": [
        {"role_definition_id": "r-ga", "role_name": "Global Administrator", "count": 5},
        {"role_definition_id": "r-ua", "role_name": "User Administrator", "count": 37},
    ],
    "items": [],
    "limit": 1000,
    "offset": 0,
}


class TestOutput:
    def test_json_output_is_the_api_json(self) -> None:
        api = FakeApi()
        plans = [plan_json(), plan_json(state="completed", id="other")]
        api.on("GET", "/api/v1/plans", plans)
        result = invoke(api, "plans", "list", "--output", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == plans

    def test_list_filters_by_tenant_and_state(self) -> None:
        api = FakeApi()
        api.on("GET", "/api/v1/plans", [])
        result = invoke(
            api, "plans", "list", "--tenant", TENANT_ID, "--state", "running", "--state", "paused"
        )
        assert result.exit_code == 0, result.output
        (sent,) = api.requests
        assert sent.url.params.get_list("state") == ["running", "paused"]
        assert sent.url.params["tenant_id"] == TENANT_ID
        assert "0 plan(s)" in result.stdout

    def test_plan_table_shows_phases_and_progress(self) -> None:
        api = FakeApi()
        plan = plan_json(
            phases=[
                phase_json("pilot", "completed", done=5, total=5),
                phase_json("feedback", "awaiting_gate", gate="manual", reason="waiting"),
            ]
        )
        api.on("GET", PLAN, plan)
        result = invoke(api, "plans", "get", PLAN_ID)
        assert result.exit_code == 0, result.output
        out = result.stdout
        for text in (PLAN_ID, "demo for Contoso", "version 3", "pause, abort", "5/5 done"):
            assert text in out
        feedback = next(line for line in out.splitlines() if "feedback" in line)
        assert "awaiting_gate" in feedback
        assert "manual" in feedback
        assert "2026-03-09 14:30:00" in feedback
        assert "waiting" in feedback

        api.on("GET", "/api/v1/plans", [plan])
        listed = invoke(api, "plans", "list").stdout
        row = next(line for line in listed.splitlines() if PLAN_ID in line)
        assert "feedback awaiting_gate" in row
        assert "5/5" in row

    def test_tenant_tables(self) -> None:
        api = FakeApi()
        api.on("GET", "/api/v1/tenants", TENANTS)
        api.on("GET", TENANT, TENANTS[0])
        listed = invoke(api, "tenants", "list")
        assert listed.exit_code == 0, listed.output
        row = next(line for line in listed.stdout.splitlines() if TENANT_ID in line)
        for text in ("Contoso", "client_secret", "it_platform_team"):
            assert text in row
        shown = invoke(api, "tenants", "get", TENANT_ID)
        assert shown.exit_code == 0, shown.output
        for text in ("bg-1, bg-2", "Binding it_platform_team", "kind: group", "Service Desk"):
            assert text in shown.stdout
        as_json = invoke(api, "tenants", "get", TENANT_ID, "-o", "json")
        assert json.loads(as_json.stdout) == TENANTS[0]

    def test_actions_send_reason_version_and_phase(self) -> None:
        api = FakeApi()
        api.on("POST", f"{PLAN}/advance", plan_json())
        result = invoke(
            api,
            "plans",
            "advance",
            PLAN_ID,
            "--phase",
            "feedback",
            "--reason",
            "feedback is in",
            "--expected-version",
            "3",
        )
        assert result.exit_code == 0, result.output
        (sent,) = api.requests
        assert json.loads(sent.content) == {
            "reason": "feedback is in",
            "expected_version": 3,
            "phase": "feedback",
        }
        for action in ("pause", "resume", "retry", "abort"):
            api.on("POST", f"{PLAN}/{action}", plan_json())
            assert invoke(api, "plans", action, PLAN_ID).exit_code == 0
            assert json.loads(api.sent("POST", f"{PLAN}/{action}")[0].content) == {}


class TestJobs:
    def test_a_job_is_followed_to_its_result(self) -> None:
        api = FakeApi()
        accepted = httpx.Response(
            202, json=job_json(), headers={"Location": "/api/v1/jobs/job-1", "Retry-After": "2"}
        )
        api.on("POST", f"{PLAN}/start", accepted)
        done = job_json("succeeded", result=plan_json(), progress={"step": "done"})
        api.on("GET", "/api/v1/jobs/job-1", job_json(), job_json(), done)
        result = invoke(api, "plans", "start", PLAN_ID, "--reason", "change 1234", "--wait", "5")
        assert result.exit_code == 0, result.output
        (start,) = api.sent("POST", f"{PLAN}/start")
        assert start.headers["prefer"] == "wait=5"
        assert json.loads(start.content) == {"reason": "change 1234"}
        assert len(api.sent("GET", "/api/v1/jobs/job-1")) == 3
        assert PLAN_ID in result.stdout
        assert "3/5 done, 1 failed, 1 remaining" in result.stdout

    def test_a_quick_answer_needs_no_job(self) -> None:
        api = FakeApi()
        api.on("POST", f"{PLAN}/start", plan_json())
        result = invoke(api, "plans", "start", PLAN_ID, "-o", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == plan_json()
        assert "prefer" not in api.requests[0].headers

    def test_a_failed_job_exits_as_its_problem_says(self) -> None:
        refused = {
            "type": "https://pim-rollout.dev/problems/preflight-failed",
            "title": "Preflight checks failed",
            "status": 409,
            "detail": "fewer than 2 break-glass accounts hold Global Administrator",
        }
        unavailable = {**refused, "status": 503, "title": "Temporarily unavailable"}
        for body, code in ((refused, 1), (unavailable, 3)):
            api = FakeApi()
            api.on("POST", f"{PLAN}/start", httpx.Response(202, json=job_json()))
            api.on("GET", "/api/v1/jobs/job-1", job_json("failed", problem=body))
            result = invoke(api, "plans", "start", PLAN_ID)
            assert result.exit_code == code, result.output
            assert f"POST {PLAN}/start (job job-1): {body['status']} " in result.stderr
            assert "fewer than 2 break-glass accounts" in result.stderr

    def test_inventory_is_taken_as_a_job_or_read(self) -> None:
        api = FakeApi()
        api.on("POST", f"{TENANT}/inventory", httpx.Response(202, json=job_json(kind="inventory")))
        api.on(
            "GET", "/api/v1/jobs/job-1", job_json("succeeded", kind="inventory", result=INVENTORY)
        )
        result = invoke(api, "tenants", "inventory", TENANT_ID)
        assert result.exit_code == 0, result.output
        assert "42 permanent Active" in result.stdout
        row = next(line for line in result.stdout.splitlines() if "User Administrator" in line)
        assert "37" in row

        api.on("GET", f"{TENANT}/inventory/latest", INVENTORY)
        latest = invoke(api, "tenants", "inventory", TENANT_ID, "--latest", "-o", "json")
        assert json.loads(latest.stdout) == INVENTORY

    def test_preview_per_phase(self) -> None:
        api = FakeApi()
        preview = {
            "plan_id": PLAN_ID,
            "phases": [
                {
                    "phase": "pilot",
                    "title": "Pilot",
                    "changes": [
                        {
                            "step": 1,
                            "kind": "convert_cohort",
                            "role": "User Administrator",
                            "subject": "ada@contoso.test",
                            "before": "Active (permanent)",
                            "after": "Eligible (permanent)",
                            "note": None,
                        }
                    ],
                    "summary": {"convert_cohort": 1},
                },
                {"phase": "feedback", "title": "Feedback", "changes": [], "summary": {}},
            ],
        }
        api.on("POST", f"{PLAN}/preview", preview)
        result = invoke(api, "plans", "preview", PLAN_ID)
        assert result.exit_code == 0, result.output
        assert "pilot: Pilot (1 change(s))" in result.stdout
        row = next(line for line in result.stdout.splitlines() if "ada@contoso.test" in line)
        assert "Eligible (permanent)" in row
        only = invoke(api, "plans", "preview", PLAN_ID, "--phase", "feedback", "-o", "json")
        assert [p["phase"] for p in json.loads(only.stdout)["phases"]] == ["feedback"]
        assert invoke(api, "plans", "preview", PLAN_ID, "--phase", "nope").exit_code == 1


class TestPosture:
    def test_a_server_without_the_report_says_so(self) -> None:
        result = invoke(FakeApi(), "tenants", "posture", TENANT_ID)
        assert result.exit_code == 1
        assert "has no posture report" in result.stderr
        assert "older pim-rollout" in result.stderr

    def test_an_unknown_tenant_is_the_servers_problem(self) -> None:
        api = FakeApi()
        api.on(
            "GET", f"{TENANT}/reports/posture", problem(404, "Not found", f"no tenant {TENANT_ID}")
        )
        result = invoke(api, "tenants", "posture", TENANT_ID)
        assert result.exit_code == 1
        assert f"no tenant {TENANT_ID}" in result.stderr
        assert "posture report" not in result.stderr

    def test_the_report_is_shown_whatever_its_shape(self) -> None:
        report = {
            "tenant_id": TENANT_ID,
            "standing_global_admins": 4,
            "roles": [
                {"role": "Global Administrator", "active": 4, "eligible": 6},
                {"role": "User Administrator", "active": 0, "eligible": 12},
            ],
        }
        api = FakeApi()
        api.on("GET", f"{TENANT}/reports/posture", report)
        result = invoke(api, "tenants", "posture", TENANT_ID)
        assert result.exit_code == 0, result.output
        assert "standing_global_admins" in result.stdout
        row = next(line for line in result.stdout.splitlines() if "User Administrator" in line)
        assert "12" in row
        as_json = invoke(api, "tenants", "posture", TENANT_ID, "-o", "json")
        assert json.loads(as_json.stdout) == report
