"""No input makes the API answer a server error.

Schemathesis generates requests from the app's own OpenAPI description, valid and invalid
(positive and negative modes), for every route the description has (the admin UI under
``/ui`` is a mount outside it), sends them in-process with an admin token, and schemathesis's
``not_a_server_error`` check must pass for every answer; a request that crashes the app counts
as a server error too. Path parameters are often swapped for ids that exist (the simulated
tenant, its plans, jobs, and whatever the run itself created), so requests get past the 404s
into the handlers. A second tenant's credential is refused by the (faked) sign-in endpoint, so
the 424 paths are fuzzed as well.

Hypothesis runs derandomized: a failure replays exactly.
"""

from __future__ import annotations

import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.python.asgi import shutdown_lifespans

from app.db.session import unit_of_work
from app.services.context import AppContext
from app.services.tokens import create_token
from tests.conftest import _drop_pg, _fresh_pg
from tests.graph.fakes import FakeEntra

EXAMPLES = int(os.environ.get("PIM_ROLLOUT_FUZZ_EXAMPLES", "60"))
"""Random requests per operation (after its schema examples and coverage cases)."""
GRAPH_EXAMPLES = max(1, EXAMPLES // 8)
"""For the routes that read the simulated tenant (about a second each)."""
SEED = os.environ.get("PIM_ROLLOUT_FUZZ_SEED")
"""Set to fuzz with other random cases than the fixed ones (e.g. to look harder, locally)."""
GRAPH_ROUTES = {
    "/api/v1/tenants/{tenant_id}/inventory",
    "/api/v1/tenants/{tenant_id}/reports/collect",
    "/api/v1/tenants/{tenant_id}/check",
    "/api/v1/plans/{plan_id}/preflight",
    "/api/v1/plans/{plan_id}/preview",
    "/api/v1/plans/{plan_id}/preview.csv",
    "/api/v1/plans/{plan_id}/{action}",
}
REFUSED_SECRET = "Zq8~Refused.secret-value-0123456789abcdef"


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite: the fuzzing is about the handlers. ``PIM_ROLLOUT_FUZZ_DATABASE=postgresql``
    fuzzes on PostgreSQL instead (its types are narrower: worth a run by hand)."""
    if os.environ.get("PIM_ROLLOUT_FUZZ_DATABASE") == "postgresql":
        name, url = _fresh_pg(request.getfixturevalue("pg_template"))
        try:
            yield url
        finally:
            _drop_pg(name)
        return
    path = tmp_path / "fuzz.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    yield f"sqlite:///{path}"


@dataclass
class Finding:
    operation: str
    request: str
    outcome: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.outcome}\n    {self.request}"


@dataclass
class Known:
    """Ids that exist, by path parameter name; the run adds what it creates."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)
    """Values never to substitute into a DELETE (the run's own admin token)."""

    def add(self, name: str, value: Any) -> None:
        values = self.ids.setdefault(name, [])
        if str(value) not in values:
            values.append(str(value))

    def substitute(self, case: Any) -> None:
        for name, value in list((case.path_parameters or {}).items()):
            known = self.ids.get(name)
            if not known:
                continue
            pick = zlib.crc32(repr(value).encode())  # deterministic, like the generation
            if pick % 4:
                case.path_parameters[name] = known[pick % len(known)]
        if case.method.upper() == "DELETE" and str(case.path_parameters.get("token_id")) in (
            self.keep
        ):
            case.path_parameters["token_id"] = 2_000_000_000

    def learn(self, path: str, status: int, body: Any) -> None:
        if status not in (200, 201, 202) or not isinstance(body, dict) or "id" not in body:
            return
        if "href" in body:
            self.add("job_id", body["id"])
        elif path == "/api/v1/tenants":
            self.add("tenant_id", body["id"])
        elif path == "/api/v1/plans":
            self.add("plan_id", body["id"])


def fuzz(
    app: FastAPI,
    headers: dict[str, str],
    known: Known,
    *,
    examples: Callable[[str], int],
    only: Callable[[str], bool] = lambda _path: True,
) -> tuple[list[Finding], int]:
    """Fuzz every operation of ``app``'s OpenAPI; the server errors found and the requests sent."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    findings: list[Finding] = []
    sent = [0]
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            assert not operation.path.startswith("/ui"), operation.path
            if not only(operation.path):
                continue
            test = create_test(
                operation=operation,
                test_func=_sender(operation, headers, known, findings, sent),
                config=HypothesisTestConfig(
                    project=schema.config,
                    # Schema examples, then coverage (boundary values, wrong types, missing
                    # and extra fields, one case each), then random cases.
                    modes=list(HypothesisTestMode),
                    seed=int(SEED) if SEED else None,
                    settings=settings(
                        max_examples=examples(operation.path),
                        deadline=None,
                        derandomize=SEED is None,
                        database=None,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    ),
                ),
            )
            with suppress(Unsatisfiable):  # nothing to make invalid: no parameters, no body
                test()
    finally:
        shutdown_lifespans()  # the app's lifespan: its jobs stop, its Graph clients close
    return findings, sent[0]


def _sender(
    operation: Any,
    headers: dict[str, str],
    known: Known,
    findings: list[Finding],
    sent: list[int],
) -> Callable[[Any], None]:
    label = f"{operation.method.upper()} {operation.path}"

    def send(case: Any) -> None:
        known.substitute(case)
        request = f"{case.method} {case.formatted_path} query={case.query}"
        sent[0] += 1
        try:
            response = case.call(headers=dict(headers))  # (it adds to the dict it gets)
        except Exception as exc:  # the app raised through the transport
            findings.append(Finding(label, request, f"crashed: {exc!r}"[:500]))
            return
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (Exception, BaseExceptionGroup):
            findings.append(
                Finding(label, request, f"{response.status_code} {response.text}"[:500])
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        known.learn(operation.path, response.status_code, body)

    return send


def seed(client: TestClient, admin: dict[str, str], sim_tenant_body: dict[str, Any]) -> Known:
    """A simulated tenant with a draft and a started plan and a job; a tenant whose credential
    is refused, with a plan."""
    known = Known()
    known.add("phase_key", "pilot")
    known.add("phase_key", "all-admins")
    known.add("name", "default")
    known.add("name", "demo")
    tenant = client.post("/api/v1/tenants", json=sim_tenant_body, headers=admin).json()
    refused = client.post(
        "/api/v1/tenants",
        json={
            **sim_tenant_body,
            "name": "Refused credential",
            "graph_base_url": "https://graph.microsoft.com/v1.0",
            "auth": {
                "kind": "client_secret",
                "tenant_id": "8c2f3a31-8d6c-4f6b-9d6d-7c1f0e9b1a11",
                "client_id": "4b1d5f0e-2f0b-4c6a-8d8e-3f4a5b6c7d8e",
                "client_secret": REFUSED_SECRET,
            },
        },
        headers=admin,
    ).json()
    for tenant_id in (tenant["id"], refused["id"]):
        known.add("tenant_id", tenant_id)
        plan = client.post(
            "/api/v1/plans", json={"tenant_id": tenant_id, "template": "default"}, headers=admin
        ).json()
        known.add("plan_id", plan["id"])
    started = client.post(
        "/api/v1/plans", json={"tenant_id": tenant["id"], "template": "demo"}, headers=admin
    ).json()
    known.add("plan_id", started["id"])
    client.post(f"/api/v1/plans/{started['id']}/start", headers={**admin, "Prefer": "wait=60"})
    job = client.post(
        f"/api/v1/tenants/{tenant['id']}/inventory", headers={**admin, "Prefer": "wait=60"}
    ).json()
    known.add("job_id", job["id"])
    return known


@pytest.fixture
def admin(ctx: AppContext) -> tuple[dict[str, str], str]:
    with unit_of_work(ctx.session_factory) as session:
        plaintext, row = create_token(session, role="admin", name="fuzz", now=ctx.clock.now())
    return {"Authorization": f"Bearer {plaintext}"}, str(row.id)


class TestFuzz:
    @pytest.mark.slow  # about 45 s on 2 cores
    def test_no_input_gets_a_server_error(
        self,
        app: FastAPI,
        admin: tuple[dict[str, str], str],
        sim_tenant_body: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        FakeEntra().install(monkeypatch).refused[REFUSED_SECRET] = "AADSTS7000215"
        headers, token_id = admin
        with TestClient(app) as client:
            known = seed(client, headers, sim_tenant_body)
        known.keep.add(token_id)
        started = time.monotonic()
        findings, sent = fuzz(
            app,
            headers,
            known,
            examples=lambda path: GRAPH_EXAMPLES if path in GRAPH_ROUTES else EXAMPLES,
        )
        elapsed = time.monotonic() - started
        assert sent > 500, f"only {sent} requests were sent"
        assert not findings, f"{len(findings)} server error(s) in {sent} requests:\n" + "\n".join(
            str(f) for f in findings[:20]
        )
        print(f"fuzz: {sent} requests, no server error, {elapsed:.0f} s")  # noqa: T201

    def test_the_fuzzer_finds_a_route_that_raises(
        self, app: FastAPI, admin: tuple[dict[str, str], str]
    ) -> None:
        """The check above can fail: a handler that raises on some input is found."""
        broken = APIRouter()

        @broken.get("/api/v1/broken")
        def page(limit: str = "10") -> dict[str, int]:
            return {"limit": int(limit)}  # parsed by hand: ValueError for "ten", "1.5", ...

        app.include_router(broken)
        app.openapi_schema = None
        headers, _ = admin
        findings, _ = fuzz(
            app,
            headers,
            Known(),
            examples=lambda _path: 50,
            only=lambda path: path.startswith("/api/v1/broken"),
        )
        assert findings
        assert {f.operation for f in findings} == {"GET /api/v1/broken"}
        assert "ValueError" in findings[0].outcome or findings[0].outcome.startswith("500")
