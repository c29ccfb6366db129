"""Every request gets an id, is logged once as structured JSON, and no secret reaches the log."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
import structlog
from fastapi.testclient import TestClient

from app.logging import configure_logging
from app.main import create_app
from app.services.context import AppContext


@pytest.fixture
def json_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """JSON logs where ``capfd`` reads them: the logger binds ``sys.stderr`` when configured,
    so it is configured again once the test body runs (``_json_logging``)."""
    previous = structlog.get_config()
    yield
    structlog.configure(**previous)


def _json_logging() -> None:
    configure_logging("INFO", "json")


def log_lines(err: str) -> list[dict[str, Any]]:
    lines = []
    for line in err.splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


class TestRequestIds:
    def test_a_good_incoming_id_is_kept(self, client: TestClient) -> None:
        response = client.get("/healthz", headers={"X-Request-ID": "trace-0123456789"})
        assert response.headers["X-Request-ID"] == "trace-0123456789"

    @pytest.mark.parametrize("incoming", [None, "short", "has spaces in it", "x" * 200])
    def test_otherwise_one_is_made_up(self, client: TestClient, incoming: str | None) -> None:
        headers = {"X-Request-ID": incoming} if incoming else {}
        response = client.get("/healthz", headers=headers)
        made = response.headers["X-Request-ID"]
        assert made != incoming
        assert len(made) == 32
        assert int(made, 16) >= 0

    def test_errors_carry_the_id_too(self, client: TestClient) -> None:
        response = client.get("/api/v1/tenants/nope/reports/drift")
        assert response.status_code == 401
        assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.usefixtures("json_logs")
class TestAccessLog:
    def test_one_json_line_per_request_with_its_id_and_route(
        self,
        client: TestClient,
        tokens: dict[str, dict[str, str]],
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        _json_logging()
        capfd.readouterr()
        response = client.get(
            "/api/v1/tenants/nope/reports/activations?period=P7D",
            headers={**tokens["viewer"], "X-Request-ID": "trace-abcdefgh"},
        )
        assert response.status_code == 404
        entries = [e for e in log_lines(capfd.readouterr().err) if e["event"] == "http.request"]
        assert len(entries) == 1
        entry = entries[0]
        assert entry["request_id"] == "trace-abcdefgh"
        assert entry["route"] == "/api/v1/tenants/{tenant_id}/reports/activations"
        assert entry["path"] == "/api/v1/tenants/nope/reports/activations"
        assert (entry["method"], entry["status"], entry["level"]) == ("GET", 404, "info")
        assert isinstance(entry["duration_ms"], float)

    def test_tokens_never_reach_the_log(
        self,
        client: TestClient,
        tokens: dict[str, dict[str, str]],
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        _json_logging()
        capfd.readouterr()
        secret = tokens["operator"]["Authorization"].removeprefix("Bearer ")
        client.get("/api/v1/tenants", headers=tokens["operator"])
        client.get(
            "/api/v1/tenants", headers={"Authorization": "Bearer pimr_notarealtoken_1234567"}
        )
        err = capfd.readouterr().err
        assert log_lines(err)
        assert secret not in err
        assert "pimr_notarealtoken_1234567" not in err

    def test_scrapes_and_health_checks_are_quiet(
        self, client: TestClient, capfd: pytest.CaptureFixture[str]
    ) -> None:
        _json_logging()
        capfd.readouterr()
        client.get("/healthz")
        client.get("/metrics")
        assert [e for e in log_lines(capfd.readouterr().err) if e["event"] == "http.request"] == []

    def test_unmatched_routes_are_one_label(
        self, client: TestClient, capfd: pytest.CaptureFixture[str]
    ) -> None:
        _json_logging()
        capfd.readouterr()
        client.get("/no/such/page/123")
        (entry,) = [e for e in log_lines(capfd.readouterr().err) if e["event"] == "http.request"]
        assert (entry["route"], entry["status"]) == ("unmatched", 404)


class TestStartup:
    """FastAPI builds route state and the OpenAPI description lazily, on the loop by default."""

    def test_routes_are_built_before_the_first_request(
        self, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        app = create_app(ctx.settings, context=ctx)
        built: list[str] = []
        build = fastapi.routing.get_dependant

        def recording(**kwargs: Any) -> Any:
            built.append(kwargs["path"])
            return build(**kwargs)

        monkeypatch.setattr(fastapi.routing, "get_dependant", recording)
        client = TestClient(app)
        for path in ("/healthz", "/api/v1/plans", "/api/v1/tenants/x", "/ui/login", "/ui/plans"):
            assert client.get(path).status_code < 500, path
        assert built == [], "routes built at their first request, on the loop"

    def test_the_description_is_built_in_a_worker_thread(
        self, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        app = create_app(ctx.settings, context=ctx)
        built_on: list[str] = []
        describe = app.openapi

        def recording() -> dict[str, Any]:
            try:
                asyncio.get_running_loop()
                built_on.append("the event loop")
            except RuntimeError:
                built_on.append("a worker thread")
            return describe()

        monkeypatch.setattr(app, "openapi", recording)
        client = TestClient(app)
        response = client.get("/openapi.json")
        assert response.status_code == 200
        assert response.json()["info"]["title"] == "PIM Rollout"
        assert built_on == ["a worker thread"]
        for reader in ("/docs", "/redoc"):
            page = client.get(reader)
            assert page.status_code == 200, reader
            assert "/openapi.json" in page.text, reader

    def test_an_app_that_served_requests_is_freed_when_dropped(self, ctx: AppContext) -> None:
        # FastAPI caches the callables it classifies process-wide; a route closing over its
        # app kept every app of a test process alive (millions of objects, long collections).
        app = create_app(ctx.settings, context=ctx)
        with TestClient(app) as client:
            for path in ("/healthz", "/openapi.json", "/docs", "/redoc", "/ui/login"):
                assert client.get(path).status_code == 200, path
        alive = weakref.ref(app)
        del app, client
        gc.collect()
        assert alive() is None, "something process-wide still holds the app"


class TestNulCharacters:
    """PostgreSQL cannot store U+0000 in text; no request carrying one reaches a handler."""

    @pytest.mark.parametrize(
        ("method", "url", "body", "where"),
        [
            ("GET", "/api/v1/plans?state=running%00", None, "query"),
            ("GET", "/api/v1/tenants/abc%00def", None, "path"),
            ("POST", "/api/v1/tokens", b'{"name": "bot\\u0000", "role": "viewer"}', "body"),
            ("POST", "/api/v1/tokens", b'{"name": "bot\\\\\\u0000", "role": "viewer"}', "body"),
        ],
    )
    def test_refused_as_malformed(self, client, tokens, method, url, body, where) -> None:  # type: ignore[no-untyped-def]
        response = client.request(
            method,
            url,
            content=body,
            headers={**tokens["admin"], "content-type": "application/json"},
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert f"the request's {where} holds a NUL character" in response.json()["detail"]
        assert response.headers["x-request-id"]
        assert client.get("/api/v1/tokens", headers=tokens["admin"]).json()[-1]["name"] != "bot"

    def test_an_escaped_backslash_before_u0000_is_text(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/tokens",
            content=b'{"name": "C:\\\\u0000", "role": "viewer"}',
            headers={**tokens["admin"], "content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "C:\\u0000"

    def test_a_form_with_a_nul(self, client) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/ui/sign-in",
            content=b"token=abc%00",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
