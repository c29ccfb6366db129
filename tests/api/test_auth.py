"""Bearer tokens: 401 without or with a bad token, 403 below the needed role; /healthz is open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session

from app.db.models import ApiToken
from app.db.repos.tokens import TokenRepository
from app.db.session import DatabaseBusyError, unit_of_work
from app.services.context import AppContext
from app.services.tokens import (
    VERIFIED_FOR_SECONDS,
    Caller,
    Role,
    VerifiedTokens,
    revoke_token,
)
from tests.factories import FakeClock, tenant_body


class TestAuth:
    def test_healthz_is_open(self, client: TestClient) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    @pytest.mark.parametrize(
        "header", [None, "Bearer", "Basic abc", "Bearer pimr_not-a-real-token"]
    )
    def test_missing_or_bad_token(self, client: TestClient, header: str | None) -> None:
        headers = {"Authorization": header} if header else {}
        response = client.get("/api/v1/plans", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        ("method", "path", "role", "needed"),
        [
            ("post", "/api/v1/tenants", "operator", "admin"),
            ("post", "/api/v1/tokens", "operator", "admin"),
            ("post", "/api/v1/plans", "viewer", "operator"),
            ("post", "/api/v1/plans/x/start", "viewer", "operator"),
            ("get", "/api/v1/tokens", "operator", "admin"),
        ],
    )
    def test_role_too_low(self, client, tokens, method, path, role, needed) -> None:  # type: ignore[no-untyped-def]
        response = client.request(method, path, json={}, headers=tokens[role])
        assert response.status_code == 403
        assert response.json()["required_role"] == needed

    def test_viewer_reads(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200

    def test_revoked_token_is_refused(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        created = client.post(
            "/api/v1/tokens", json={"name": "temp", "role": "viewer"}, headers=tokens["admin"]
        ).json()
        assert created["token"].startswith("pimr_")
        temp = {"Authorization": f"Bearer {created['token']}"}
        assert client.get("/api/v1/tenants", headers=temp).status_code == 200
        assert (
            client.delete(f"/api/v1/tokens/{created['id']}", headers=tokens["admin"]).status_code
            == 200
        )
        assert client.get("/api/v1/tenants", headers=temp).status_code == 401
        listed = client.get("/api/v1/tokens", headers=tokens["admin"]).json()
        assert all("token" not in t and "token_hash" not in t for t in listed)

    def test_tokens_are_stored_hashed(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        from sqlmodel import select

        from app.db.models import ApiToken

        plaintexts = {h["Authorization"].split()[1] for h in tokens.values()}
        with ctx.session_factory() as session:
            rows = session.exec(select(ApiToken)).all()
        stored = {r.token_hash for r in rows} | {r.prefix for r in rows}
        assert not plaintexts & stored
        assert all(len(r.token_hash) == 64 for r in rows)

    def test_forbidden_write_changes_nothing(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/tenants", json=tenant_body(), headers=tokens["operator"])
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).json() == []


Tokens = dict[str, dict[str, str]]


@dataclass
class DbSpy:
    """The units of work a request opens, and every statement it sends that changes rows."""

    reading: int = 0
    writing: int = 0
    changes: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget the test's own set-up; count from the next request on."""
        self.reading, self.writing, self.changes = 0, 0, []


@pytest.fixture
def spy(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[DbSpy]:
    seen = DbSpy()
    real_reading, real_writing = ctx.db.reading, ctx.db.writing

    def reading() -> AbstractContextManager[Session]:
        seen.reading += 1
        return real_reading()

    def writing() -> AbstractContextManager[Session]:
        seen.writing += 1
        return real_writing()

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen.changes.append(sql)

    monkeypatch.setattr(ctx.db, "reading", reading)
    monkeypatch.setattr(ctx.db, "writing", writing)
    event.listen(ctx.db.engine, "before_cursor_execute", statement)
    yield seen
    event.remove(ctx.db.engine, "before_cursor_execute", statement)


def _token(ctx: AppContext, name: str) -> ApiToken:
    with ctx.session_factory() as session:
        row = next(t for t in TokenRepository(session).list_tokens() if t.name == name)
    return row


def _stamp(ctx: AppContext, name: str, at: datetime | None) -> None:
    token_id = _token(ctx, name).id
    assert token_id is not None
    with unit_of_work(ctx.session_factory) as session:
        row = TokenRepository(session).get(token_id)
        assert row is not None
        row.last_used_at = at
        session.add(row)


class TestLastUsed:
    """A GET writes nothing; when a token was last used is stamped at most once a minute."""

    def test_a_read_with_a_fresh_stamp_writes_nothing(
        self, client: TestClient, tokens: Tokens, ctx: AppContext, clock: FakeClock, spy: DbSpy
    ) -> None:
        stamped = clock.now() - timedelta(seconds=10)
        _stamp(ctx, "viewer-bot", stamped)
        before = _token(ctx, "viewer-bot")
        spy.reset()
        response = client.get("/api/v1/tenants", headers=tokens["viewer"])
        assert response.status_code == 200
        assert spy.reading >= 1
        assert (spy.writing, spy.changes) == (0, [])
        after = _token(ctx, "viewer-bot")
        assert after.last_used_at == stamped
        assert after.model_dump() == before.model_dump()

    def test_a_stamp_older_than_a_minute_is_renewed_once_a_minute(
        self, client: TestClient, tokens: Tokens, ctx: AppContext, clock: FakeClock, spy: DbSpy
    ) -> None:
        _stamp(ctx, "viewer-bot", clock.now() - timedelta(seconds=61))
        first = clock.now()
        spy.reset()
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert _token(ctx, "viewer-bot").last_used_at == first
        assert spy.writing == 1
        assert len(spy.changes) == 1
        assert "api_token" in spy.changes[0].lower()

        clock.advance(seconds=59)
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert _token(ctx, "viewer-bot").last_used_at == first
        assert (spy.writing, len(spy.changes)) == (1, 1)

        clock.advance(seconds=1)
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert _token(ctx, "viewer-bot").last_used_at == first + timedelta(seconds=60)
        assert (spy.writing, len(spy.changes)) == (2, 2)

    def test_the_first_use_is_recorded(
        self, client: TestClient, tokens: Tokens, ctx: AppContext, clock: FakeClock
    ) -> None:
        assert _token(ctx, "operator-bot").last_used_at is None
        assert client.get("/api/v1/plans", headers=tokens["operator"]).status_code == 200
        assert _token(ctx, "operator-bot").last_used_at == clock.now()
        assert _token(ctx, "viewer-bot").last_used_at is None

    def test_unknown_and_revoked_tokens_answer_401_and_write_nothing(
        self, client: TestClient, tokens: Tokens, ctx: AppContext, clock: FakeClock, spy: DbSpy
    ) -> None:
        stale = clock.now() - timedelta(hours=1)
        _stamp(ctx, "viewer-bot", stale)
        token_id = _token(ctx, "viewer-bot").id
        assert token_id is not None
        with unit_of_work(ctx.session_factory) as session:
            revoke_token(session, token_id=token_id, now=clock.now())
        spy.reset()
        revoked = client.get("/api/v1/tenants", headers=tokens["viewer"])
        unknown = client.get(
            "/api/v1/tenants", headers={"Authorization": "Bearer pimr_not-a-real-token"}
        )
        for response in (revoked, unknown):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert (spy.writing, spy.changes) == (0, [])
        assert _token(ctx, "viewer-bot").last_used_at == stale

    def test_a_busy_database_does_not_fail_the_read(
        self,
        client: TestClient,
        tokens: Tokens,
        ctx: AppContext,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def busy() -> AbstractContextManager[Session]:
            raise DatabaseBusyError("no write turn")

        monkeypatch.setattr(ctx.db, "writing", busy)
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert _token(ctx, "viewer-bot").last_used_at is None


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestVerifiedTokens:
    """A token verified moments ago costs no database trip; revocation still takes hold."""

    @pytest.fixture
    def monotonic(self, ctx: AppContext) -> FakeMonotonic:
        fake = FakeMonotonic()
        ctx.verified_tokens = VerifiedTokens(monotonic=fake)
        return fake

    def test_a_token_verified_moments_ago_is_not_read_again(
        self, client: TestClient, tokens: Tokens, monotonic: FakeMonotonic, spy: DbSpy
    ) -> None:
        spy.reset()
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        first = spy.reading
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert spy.reading - first == first - 1, "the second request read only what it returns"

        monotonic.now += VERIFIED_FOR_SECONDS
        spy.reset()
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        assert spy.reading == first, "after a few seconds the token is read again"

    def test_a_token_revoked_elsewhere_is_refused_within_seconds(
        self,
        client: TestClient,
        tokens: Tokens,
        ctx: AppContext,
        clock: FakeClock,
        monotonic: FakeMonotonic,
    ) -> None:
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        token_id = _token(ctx, "viewer-bot").id
        assert token_id is not None
        # The CLI or another worker revokes it: this process's API never hears of it.
        with unit_of_work(ctx.session_factory) as session:
            revoke_token(session, token_id=token_id, now=clock.now())
        monotonic.now += VERIFIED_FOR_SECONDS - 0.5
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        monotonic.now += 0.5
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 401

    def test_a_token_revoked_through_the_api_is_refused_at_once(
        self, client: TestClient, tokens: Tokens, ctx: AppContext, monotonic: FakeMonotonic
    ) -> None:
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200
        token_id = _token(ctx, "viewer-bot").id
        deleted = client.delete(f"/api/v1/tokens/{token_id}", headers=tokens["admin"])
        assert deleted.status_code == 200
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 401

    def test_the_cache_is_bounded_oldest_out_first(self) -> None:
        verified = VerifiedTokens(max_entries=2, monotonic=FakeMonotonic())
        for n in range(3):
            verified.put(f"hash{n}", Caller(token_id=n, name=f"t{n}", role=Role.viewer), None)
        assert verified.get("hash0") is None
        assert verified.get("hash1") is not None
        assert verified.get("hash2") is not None
        verified.forget(1)
        assert verified.get("hash1") is None
