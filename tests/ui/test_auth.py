"""Signing in and out, the session cookie, and the CSRF check on every form."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.db.repos.tokens import TokenRepository
from app.db.session import unit_of_work
from app.services.context import AppContext
from app.services.tokens import revoke_token
from app.ui.auth import COOKIE_NAME
from tests.factories import FakeClock, app_under_test
from tests.ui.conftest import Ui, context_of, template_of


def _token_id(ctx: AppContext, name: str) -> int:
    with ctx.session_factory() as session:
        row = next(t for t in TokenRepository(session).list_tokens() if t.name == name)
    assert row.id is not None
    return row.id


def _cookie_header(response: Any) -> str:
    return str(next(v for k, v in response.headers.multi_items() if k == "set-cookie"))


class TestSignIn:
    def test_good_token_gives_a_session_and_goes_to_the_plans(
        self, ui: Ui, tokens: dict[str, str]
    ) -> None:
        response = ui.sign_in(tokens["operator"])
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/plans"
        page = ui.client.get("/ui/plans")
        assert template_of(page) == "plans/list.html"
        caller = context_of(page)["caller"]
        assert (caller.name, caller.role.value) == ("operator-ui", "operator")
        assert [f.title for f in context_of(page)["flashes"]] == [
            "Signed in as operator-ui (operator)."
        ]

    def test_cookie_is_httponly_strict_scoped_and_never_holds_the_token(
        self, ui: Ui, tokens: dict[str, str]
    ) -> None:
        response = ui.sign_in(tokens["admin"])
        header = _cookie_header(response)
        flags = [part.strip().lower() for part in header.split(";")]
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/ui" in flags
        assert "secure" not in flags  # public_url is http in these tests
        value = header.split(";")[0].split("=", 1)[1]
        payload = json.loads(base64.b64decode(value.split(".")[0] + "=="))
        assert tokens["admin"] not in header
        assert tokens["admin"] not in json.dumps(payload)
        assert isinstance(payload["token_id"], int)

    def test_cookie_is_secure_when_the_public_url_is_https(
        self, ctx: AppContext, tokens: dict[str, str]
    ) -> None:
        ctx.settings = ctx.settings.model_copy(update={"public_url": "https://pim.example.com"})
        with TestClient(
            app_under_test(ctx),
            base_url="https://testserver",
            follow_redirects=False,
        ) as client:
            response = Ui(client).sign_in(tokens["viewer"])
        assert response.status_code == 303
        assert "secure" in [p.strip().lower() for p in _cookie_header(response).split(";")]

    def test_bad_token_is_refused_on_the_form(self, ui: Ui) -> None:
        response = ui.sign_in("pimr_not-a-real-token")
        assert response.status_code == 401
        assert template_of(response) == "auth/login.html"
        assert context_of(response)["errors"] == {
            "token": "That token is unknown or has been revoked."
        }
        assert ui.client.get("/ui/plans").status_code == 303

    def test_empty_token_asks_for_one(self, ui: Ui) -> None:
        response = ui.sign_in("   ")
        assert response.status_code == 422
        assert "token" in context_of(response)["errors"]

    def test_revoked_token_cannot_sign_in(
        self, ui: Ui, ctx: AppContext, tokens: dict[str, str]
    ) -> None:
        ui.sign_in(tokens["operator"])
        ui.client.cookies.clear()
        with unit_of_work(ctx.session_factory) as session:
            revoke_token(session, token_id=_token_id(ctx, "operator-ui"), now=ctx.clock.now())
        response = ui.sign_in(tokens["operator"])
        assert response.status_code == 401

    def test_revoking_the_token_ends_its_sessions(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        assert as_operator.client.get(f"/ui/plans/{plan_id}").status_code == 200
        with unit_of_work(ctx.session_factory) as session:
            revoke_token(
                session,
                token_id=_token_id(ctx, "operator-ui"),
                now=ctx.clock.now() + timedelta(seconds=1),
            )
        response = as_operator.client.get(f"/ui/plans/{plan_id}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/login?next=%2Fui%2Fplans%2F{plan_id}"

    def test_after_sign_in_it_goes_back_where_it_was_asked_to(
        self, ui: Ui, tokens: dict[str, str]
    ) -> None:
        first = ui.client.get("/ui/tenants")
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Ftenants"
        response = ui.client.post(
            "/ui/login",
            data={"token": tokens["viewer"], "next": "/ui/tenants", "csrf_token": ui.csrf()},
        )
        assert response.headers["location"] == "/ui/tenants"

    @pytest.mark.parametrize(
        "target", ["https://evil.example/", "//evil.example/ui", "/api/v1/plans", "/uix"]
    )
    def test_next_never_leaves_the_ui(self, ui: Ui, tokens: dict[str, str], target: str) -> None:
        response = ui.client.post(
            "/ui/login", data={"token": tokens["viewer"], "next": target, "csrf_token": ui.csrf()}
        )
        assert response.headers["location"] == "/ui/plans"

    def test_a_signed_in_user_skips_the_login_page(self, as_viewer: Ui) -> None:
        response = as_viewer.client.get("/ui/login")
        assert response.status_code == 303

    def test_sign_in_rotates_the_csrf_token(self, ui: Ui, tokens: dict[str, str]) -> None:
        before = ui.csrf()
        ui.client.post("/ui/login", data={"token": tokens["viewer"], "csrf_token": before})
        after = ui.csrf()
        assert after != before


class TestLastUsed:
    """Pages read the token without writing; its use is stamped at most once a minute."""

    def test_pages_stamp_the_token_at_most_once_a_minute(
        self, as_viewer: Ui, ctx: AppContext, clock: FakeClock, plan_id: str
    ) -> None:
        def last_used() -> object:
            with ctx.session_factory() as session:
                row = TokenRepository(session).get(_token_id(ctx, "viewer-ui"))
            assert row is not None
            return row.last_used_at

        signed_in = clock.now()
        assert last_used() == signed_in  # signing in is a use
        changes: list[str] = []

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            if sql.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
                changes.append(sql)

        event.listen(ctx.db.engine, "before_cursor_execute", statement)
        try:
            clock.advance(seconds=59)
            for path in ("/ui/plans", f"/ui/plans/{plan_id}", f"/ui/plans/{plan_id}/live"):
                assert as_viewer.client.get(path).status_code == 200, path
            assert changes == []
            assert last_used() == signed_in
            clock.advance(seconds=1)
            assert as_viewer.client.get("/ui/tenants").status_code == 200
            assert len(changes) == 1
            assert "api_token" in changes[0].lower()
        finally:
            event.remove(ctx.db.engine, "before_cursor_execute", statement)
        assert last_used() == clock.now()


class TestSignOut:
    def test_sign_out_ends_the_session(self, as_operator: Ui) -> None:
        response = as_operator.post("/ui/logout")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login"
        assert as_operator.client.get("/ui/plans").status_code == 303
        page = as_operator.client.get("/ui/login")
        assert [f.title for f in context_of(page)["flashes"]] == ["Signed out."]

    def test_sign_out_needs_the_csrf_token(self, as_operator: Ui) -> None:
        response = as_operator.client.post("/ui/logout", data={})
        assert response.status_code == 403
        assert as_operator.client.get("/ui/plans").status_code == 200


class TestSessionRequired:
    PAGES = (
        "/ui/plans",
        "/ui/plans/new",
        "/ui/plans/{plan}",
        "/ui/plans/{plan}/live",
        "/ui/plans/{plan}/actions/pause",
        "/ui/plans/{plan}/preview",
        "/ui/plans/{plan}/preview.csv",
        "/ui/plans/{plan}/journal",
        "/ui/plans/{plan}/history",
        "/ui/plans/{plan}/comms",
        "/ui/plans/{plan}/comms/pilot/frame",
        "/ui/plans/{plan}/baseline",
        "/ui/tenants",
        "/ui/tenants/new",
        "/ui/tenants/{tenant}",
    )
    FORMS = (
        "/ui/plans",
        "/ui/plans/{plan}/actions/start",
        "/ui/plans/{plan}/preflight",
        "/ui/tenants",
        "/ui/tenants/{tenant}/inventory",
        "/ui/tenants/{tenant}/automation",
    )

    def test_every_page_redirects_to_sign_in(
        self, client: TestClient, plan_id: str, tenant_id: str
    ) -> None:
        for template in self.PAGES:
            path = template.format(plan=plan_id, tenant=tenant_id)
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next="), path

    def test_every_form_redirects_to_sign_in_and_changes_nothing(
        self, ui: Ui, plan_id: str, tenant_id: str
    ) -> None:
        token = ui.csrf()
        for template in self.FORMS:
            path = template.format(plan=plan_id, tenant=tenant_id)
            response = ui.client.post(
                path, data={"csrf_token": token, "reason": "no session", "confirm": "yes"}
            )
            assert response.status_code == 303, path
            assert response.headers["location"] == "/ui/login", path

    def test_htmx_poll_without_a_session_asks_the_browser_to_navigate(
        self, client: TestClient, plan_id: str
    ) -> None:
        response = client.get(f"/ui/plans/{plan_id}/live", headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert response.headers["HX-Redirect"] == "/ui/login"
        assert response.text == ""

    def test_root_goes_to_the_plans(self, as_viewer: Ui) -> None:
        response = as_viewer.client.get("/ui/")
        assert response.headers["location"] == "/ui/plans"


class TestCsrf:
    @pytest.mark.parametrize("token", [None, "", "forged-token"])
    def test_action_without_the_right_token_is_refused_and_changes_nothing(
        self, as_operator: Ui, plan_id: str, token: str | None
    ) -> None:
        data = {"reason": "try it", "confirm": "yes"}
        if token is not None:
            data["csrf_token"] = token
        response = as_operator.client.post(f"/ui/plans/{plan_id}/actions/abort", data=data)
        assert response.status_code == 403
        assert template_of(response) == "errors/403.html"
        assert context_of(response)["kind"] == "csrf"
        assert "security token" in response.text
        plan = as_operator.client.get(f"/ui/plans/{plan_id}")
        assert context_of(plan)["page"].plan.state == "draft"
        assert context_of(plan)["page"].plan.version == 1

    def test_create_plan_without_the_token_creates_nothing(
        self, as_operator: Ui, tenant_id: str
    ) -> None:
        response = as_operator.client.post(
            "/ui/plans", data={"tenant_id": tenant_id, "template": "default"}
        )
        assert response.status_code == 403
        listing = as_operator.client.get("/ui/plans")
        assert context_of(listing)["items"] == []

    def test_sign_in_form_needs_the_token(self, ui: Ui, tokens: dict[str, str]) -> None:
        ui.client.get("/ui/login")
        response = ui.client.post("/ui/login", data={"token": tokens["admin"]})
        assert response.status_code == 403
        assert ui.client.get("/ui/plans").status_code == 303

    def test_a_token_from_another_session_is_refused(
        self, app: FastAPI, as_operator: Ui, plan_id: str
    ) -> None:
        with TestClient(app, follow_redirects=False) as other:
            stranger = Ui(other).csrf()
        response = as_operator.client.post(
            f"/ui/plans/{plan_id}/actions/abort",
            data={"csrf_token": stranger, "reason": "cross-session", "confirm": "yes"},
        )
        assert response.status_code == 403

    def test_header_token_is_accepted_for_scripted_posts(
        self, as_operator: Ui, plan_id: str
    ) -> None:
        token = as_operator.csrf()
        response = as_operator.client.post(
            f"/ui/plans/{plan_id}/actions/abort",
            data={"reason": "header token", "confirm": "yes"},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 303
        plan = as_operator.client.get(f"/ui/plans/{plan_id}")
        assert context_of(plan)["page"].plan.state == "cancelled"


def test_cookie_name_is_specific(ui: Ui, tokens: dict[str, str]) -> None:
    response = ui.sign_in(tokens["viewer"])
    assert _cookie_header(response).startswith(f"{COOKIE_NAME}=")


def test_a_link_from_another_site_keeps_the_session(
    as_viewer: Ui, client: TestClient, plan_id: str
) -> None:
    """The browser withholds a SameSite=Strict cookie on a cross-site link: bounce same-site."""
    path = f"/ui/plans/{plan_id}"
    cookies = dict(client.cookies)
    client.cookies.clear()
    response = client.get(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert template_of(response) == "auth/continue.html"
    assert "set-cookie" not in response.headers
    assert f'content="0; url={path}"' in response.text
    client.cookies.update(cookies)
    assert client.get(path, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
