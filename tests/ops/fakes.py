"""A scripted API behind httpx's MockTransport, and a runner for the HTTP commands."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from app.cli import cli
from app.ops.options import OpsDeps

SERVER = "http://pim.test"
TOKEN = "pimr_s3cr3t-token-value"
PLAN_ID = "6f1c2f7e-3d52-4c1e-9a77-0a3c1d2b4e5f"
TENANT_ID = "0d9e8f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a"
PROBLEM = "application/problem+json"
# What the server answers for a path it has no route for (the framework's bare 404).
NO_ROUTE = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not Found"}

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://pim-rollout.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return httpx.Response(status, json=body, headers={"content-type": PROBLEM})


def phase_json(
    key: str,
    state: str = "pending",
    *,
    gate: str = "auto",
    done: int = 0,
    total: int = 0,
    failed: int = 0,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "title": key.replace("-", " ").capitalize(),
        "state": state,
        "gate": gate,
        "due_at": "2026-03-09T14:30:00+00:00",
        "started_at": None,
        "finished_at": None,
        "status_reason": reason,
        "progress": {
            "done": done,
            "failed": failed,
            "remaining": total - done - failed,
            "skipped": 0,
            "kept_active": 0,
            "total": total,
        },
    }


def plan_json(
    state: str = "running", phases: Sequence[dict[str, Any]] | None = None, **over: Any
) -> dict[str, Any]:
    return {
        "id": PLAN_ID,
        "tenant_id": TENANT_ID,
        "name": "demo for Contoso",
        "template": "demo",
        "state": state,
        "version": 3,
        "spec_hash": "ab" * 32,
        "status_reason": None,
        "rollback_target": None,
        "allowed_events": ["pause", "abort"],
        "created_by": "token:ops",
        "created_at": "2026-03-09T14:00:00+00:00",
        "updated_at": "2026-03-09T14:31:00+00:00",
        "started_at": "2026-03-09T14:30:00+00:00",
        "finished_at": None,
        "preflight": None,
        "phases": list(phases or [phase_json("pilot", "running", done=3, total=5, failed=1)]),
        **over,
    }


def job_json(state: str = "running", **over: Any) -> dict[str, Any]:
    return {
        "id": "job-1",
        "kind": "start",
        "state": state,
        "tenant_id": TENANT_ID,
        "plan_id": PLAN_ID,
        "actor": "token:ops",
        "progress": {"step": "inventory: roles read", "done": 4, "total": 11},
        "result": None,
        "problem": None,
        "created_at": "2026-03-09T14:30:00+00:00",
        "finished_at": None,
        "href": "/api/v1/jobs/job-1",
        **over,
    }


@dataclass
class FakeApi:
    """Answers by (method, path) in turn; the last answer repeats. Records every request."""

    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Reply | Mapping[str, Any] | list[Any]) -> None:
        self.routes[(method, path)] = [
            r if isinstance(r, httpx.Response) or callable(r) else httpx.Response(200, json=r)
            for r in replies
        ]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        replies = self.routes.get((request.method, request.url.path))
        if not replies:
            return httpx.Response(
                404,
                json={
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "Not Found",
                },
                headers={"content-type": PROBLEM},
            )
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply(request) if callable(reply) else reply

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if (r.method, r.url.path) == (method, path)]


def invoke(
    api: FakeApi | httpx.BaseTransport,
    *args: str,
    token: str | None = TOKEN,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = lambda _seconds: None,
) -> Result:
    """``pim-rollout ARGS --server … --token …`` against ``api``; polls do not wait."""
    transport = httpx.MockTransport(api.handle) if isinstance(api, FakeApi) else api
    given = "--server" in args or (env is not None and "PIM_ROLLOUT_SERVER" in env)
    extra = [] if given else ["--server", SERVER]
    if token is not None:
        extra += ["--token", token]
    environment: dict[str, str | None] = {"PIM_ROLLOUT_SERVER": None, "PIM_ROLLOUT_TOKEN": None}
    environment.update(env or {})
    return CliRunner().invoke(
        cli,
        [*args, *extra],
        obj=OpsDeps(transport=transport, sleep=sleep),
        env=environment,
    )
