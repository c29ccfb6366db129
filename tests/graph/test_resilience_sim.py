"""Throttling, paging, batching, faults, lost answers and secrecy against the simulated tenant."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from pydantic import SecretStr

from app.domain.tenant import ClientSecretAuth, GraphLimits, NoAuth
from app.graph.auth import GraphTokenAuth, build_auth, build_credential
from app.graph.client import GraphClient
from app.graph.errors import (
    GraphAlreadyExistsError,
    GraphError,
    GraphNotFoundError,
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
    GraphServerError,
)
from app.graph.models import BatchRequest, ScheduleRequest, ScheduleRequestCreate
from app.settings import GraphSettings
from app.simulator.seed import add_outside_pim_assignment

from .conftest import FakeTime
from .sim import REPORTS_READER, SIM_URL, SimTenant, make_sim

ELIGIBILITY_REQUESTS = "/roleManagement/directory/roleEligibilityScheduleRequests"


def assign(principal: str, role: str = REPORTS_READER) -> ScheduleRequestCreate:
    return ScheduleRequestCreate.model_validate(
        {
            "action": "adminAssign",
            "principalId": principal,
            "roleDefinitionId": role,
            "justification": "PIM rollout",
            "scheduleInfo": {"expiration": {"type": "noExpiration"}},
        }
    )


async def plain_users(sim: SimTenant, count: int) -> list[str]:
    state = await sim.get("/_sim/state")
    holders = {a["principal_id"] for a in state["active_assignments"]}
    return [
        u["id"] for u in state["users"] if u["id"] not in holders and u["user_type"] == "Member"
    ][:count]


def retry_events(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


class TestThrottling:
    async def test_retry_after_is_honoured(
        self,
        fake_time: FakeTime,
        graph_settings: GraphSettings,
        captured_logs: list[dict[str, Any]],
    ) -> None:
        sim = make_sim(fake_time, write_quota=3, write_window_seconds=30.0)
        principals = await plain_users(sim, 6)
        async with sim.client(graph_settings) as client:
            created = [await client.create_eligibility_request(assign(p)) for p in principals]
        assert all(r.is_success for r in created)
        throttled = retry_events(captured_logs, "graph.retry.throttled")
        stats = await sim.get("/_sim/requests")
        assert stats["throttled"] == len(throttled) > 0
        # The sim refills one write every 10 s, so each 429 said "Retry-After: 10.000".
        assert [e["delay"] for e in throttled] == [10.0] * len(throttled)
        assert fake_time.sleeps == [10.0] * len(throttled)
        assert all(e["client_request_id"] and e["request_id"] for e in throttled)

    async def test_the_write_pacer_keeps_the_product_under_the_quota(
        self, fake_time: FakeTime, graph_settings: GraphSettings
    ) -> None:
        sim = make_sim(fake_time, write_quota=5, write_window_seconds=10.0)
        limits = GraphLimits(write_quota=5, write_window_seconds=10.0)
        principals = await plain_users(sim, 12)
        async with sim.client(graph_settings, limits=limits) as client:
            for principal in principals:
                await client.create_eligibility_request(assign(principal))
        stats = await sim.get("/_sim/requests")
        assert stats["throttled"] == 0

    async def test_persistent_throttling_ends_at_the_deadline(
        self, fake_time: FakeTime, graph_settings: GraphSettings
    ) -> None:
        sim = make_sim(fake_time, write_quota=1, write_window_seconds=3600.0)
        principals = await plain_users(sim, 2)
        settings = graph_settings.model_copy(update={"total_deadline_seconds": 60.0})
        async with sim.client(settings) as client:
            await client.create_eligibility_request(assign(principals[0]))
            with pytest.raises(GraphRetryExhaustedError) as caught:
                await client.create_eligibility_request(assign(principals[1]))
        assert caught.value.status == 429
        assert caught.value.code == "TooManyRequests"
        assert caught.value.retry_after == pytest.approx(3600.0)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the simulator's transport to see which URLs were requested (not a mock)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.exchanges.append((str(request.url), json.loads(body) if body else None))
        return httpx.Response(response.status_code, headers=response.headers, content=body)


class TestPaging:
    async def test_ten_thousand_assignments_each_exactly_once(
        self, fake_time: FakeTime, graph_settings: GraphSettings
    ) -> None:
        sim = make_sim(fake_time, users=2100, admins=30)
        state = sim.state
        users = sorted(state.users)[:2000]
        at = sim.clock.now()
        roles = [
            "4a5d8f65-41da-4de4-8968-e035b65339cf",
            "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
            "5d6b6bb7-de71-4623-b4af-96380a352509",
            "29232cdf-9323-42fd-ade2-1d097af3e4de",
            "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        ]
        for user_id in users:
            for role in roles:
                if state.actives.find(user_id, role, "/") is None:
                    add_outside_pim_assignment(state, user_id, role, at=at)
        expected = {s.id for s in state.actives}
        assert len(expected) >= 10_000

        recorder = RecordingTransport(sim.transport())
        client = GraphClient(
            SIM_URL,
            auth=build_auth(NoAuth(kind="none"), SIM_URL),
            transport=recorder,
            settings=graph_settings,
            limits=GraphLimits(),
            sleeper=fake_time.sleep,
            clock=fake_time.clock,
        )
        async with client:
            seen = [a.id async for a in client.iter_role_assignments()]
        assert len(seen) == len(expected)
        assert set(seen) == expected
        assert len(recorder.exchanges) > 100
        for (_, body), (next_url, _) in zip(
            recorder.exchanges, recorder.exchanges[1:], strict=False
        ):
            assert next_url == body["@odata.nextLink"]  # followed verbatim
        assert "@odata.nextLink" not in recorder.exchanges[-1][1]


class TestBatch:
    async def test_mixed_item_results(
        self,
        fake_time: FakeTime,
        graph_settings: GraphSettings,
        captured_logs: list[dict[str, Any]],
    ) -> None:
        sim = make_sim(fake_time, write_quota=2, write_window_seconds=20.0)
        existing, fresh, later = await plain_users(sim, 3)
        async with sim.client(graph_settings) as client:
            await client.create_eligibility_request(assign(existing))
            fake_time.advance(60.0)  # the sim's write bucket is full again (2 writes)
            requests = [
                BatchRequest(
                    id="ok", method="POST", url=ELIGIBILITY_REQUESTS, body=assign(fresh).to_graph()
                ),
                BatchRequest(
                    id="exists",
                    method="POST",
                    url=ELIGIBILITY_REQUESTS,
                    body=assign(existing).to_graph(),
                ),
                BatchRequest(
                    id="missing", method="GET", url="/users/00000000-0000-0000-0000-00000000dead"
                ),
                BatchRequest(
                    id="throttled",
                    method="POST",
                    url=ELIGIBILITY_REQUESTS,
                    body=assign(later).to_graph(),
                ),
            ]
            results = await client.batch(requests)

        assert results["ok"].ok
        assert ScheduleRequest.model_validate(results["ok"].json_object()).is_success
        assert isinstance(results["exists"].error, GraphAlreadyExistsError)
        assert isinstance(results["missing"].error, GraphNotFoundError)
        assert results["throttled"].ok, "re-sent after its Retry-After and then created"
        assert fake_time.sleeps == [pytest.approx(10.0)]
        state = await sim.get("/_sim/state")
        eligible = {e["principal_id"] for e in state["eligible_assignments"]}
        assert {existing, fresh, later} <= eligible
        assert retry_events(captured_logs, "graph.retry.batch_items")[0]["throttled"] == 1

    async def test_more_than_twenty_items_are_chunked(
        self, fake_time: FakeTime, graph_settings: GraphSettings
    ) -> None:
        sim = make_sim(fake_time)
        state = await sim.get("/_sim/state")
        ids = [u["id"] for u in state["users"]][:50]
        async with sim.client(graph_settings) as client:
            results = await client.batch(
                [
                    BatchRequest(id=f"u{i}", method="GET", url=f"/users/{uid}")
                    for i, uid in enumerate(ids)
                ]
            )
        assert [results[f"u{i}"].json_object()["id"] for i in range(50)] == ids
        stats = await sim.get("/_sim/requests")
        batches = [r for r in stats["by_route"] if r["method"] == "POST" and "batch" in r["route"]]
        assert sum(r["count"] for r in batches) == 3


class TestFaults:
    async def test_lost_answer_to_a_write_is_an_unknown_outcome_and_the_write_happened(
        self, fake_time: FakeTime
    ) -> None:
        sim = make_sim(fake_time)
        principal = (await plain_users(sim, 1))[0]
        settings = GraphSettings(request_timeout_seconds=0.2, max_attempts=3)
        await sim.set_faults(lost_response_rate=1.0, lost_response_hang_seconds=5.0)
        async with sim.client(settings) as client:
            with pytest.raises(GraphOutcomeUnknownError) as caught:
                await client.create_eligibility_request(assign(principal))
            assert caught.value.method == "POST"
            assert caught.value.path == f"/v1.0{ELIGIBILITY_REQUESTS}"
            assert caught.value.client_request_id
            await sim.set_faults(lost_response_rate=0.0)
            # The caller verifies by reading before retrying: the write did happen.
            schedules = [
                s
                async for s in client.iter_eligibility_schedules(
                    principal_id=principal, role_definition_id=REPORTS_READER
                )
            ]
        assert len(schedules) == 1
        assert (await sim.get("/_sim/requests"))["lost"] == 1

    async def test_lost_answers_to_reads_are_retried(self, fake_time: FakeTime) -> None:
        sim = make_sim(fake_time)
        settings = GraphSettings(request_timeout_seconds=0.2, max_attempts=2)
        await sim.set_faults(lost_response_rate=1.0, lost_response_hang_seconds=5.0)
        async with sim.client(settings) as client:
            with pytest.raises(GraphRetryExhaustedError) as caught:
                await client.get_organization()
        assert caught.value.attempts == 2
        assert (await sim.get("/_sim/requests"))["lost"] == 2

    async def test_server_faults_are_retried_for_reads(
        self,
        fake_time: FakeTime,
        graph_settings: GraphSettings,
        captured_logs: list[dict[str, Any]],
    ) -> None:
        sim = make_sim(fake_time, fault_rate=0.4, seed=11)
        settings = graph_settings.model_copy(update={"max_attempts": 8})
        async with sim.client(settings) as client:
            for _ in range(25):
                assert (await client.get_organization()).id
        faulted = (await sim.get("/_sim/requests"))["faulted"]
        retried = retry_events(captured_logs, "graph.retry.server_error")
        assert faulted == len(retried) > 5
        assert {e["status"] for e in retried} <= {500, 503, 504}

    async def test_server_fault_on_a_write(
        self, fake_time: FakeTime, graph_settings: GraphSettings
    ) -> None:
        sim = make_sim(fake_time, fault_rate=1.0, seed=3)
        principal = (await plain_users(sim, 1))[0]
        async with sim.client(graph_settings.model_copy(update={"max_attempts": 3})) as client:
            with pytest.raises(GraphError) as caught:
                await client.create_eligibility_request(assign(principal))
        # Graph-answered 503/504 are retried until exhausted; a 500 is raised at once.
        error = caught.value
        assert isinstance(error, GraphRetryExhaustedError | GraphServerError)
        assert error.status in (500, 503, 504)


class TestSecrecy:
    async def test_secrets_and_tokens_never_reach_logs_or_errors(
        self,
        fake_time: FakeTime,
        graph_settings: GraphSettings,
        captured_logs: list[dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        secret = "Zq8~SUPER-secret-client-value-1234567890"
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-access-token-payload.signature"
        auth_config = ClientSecretAuth(
            kind="client_secret",
            tenant_id=uuid.UUID("11111111-2222-3333-4444-555555555555"),
            client_id=uuid.UUID("66666666-7777-8888-9999-000000000000"),
            client_secret=SecretStr(secret),
        )
        credential = build_credential(auth_config)
        fetched: list[str] = []

        async def fake_get_token(*scopes: str, **kwargs: Any) -> AccessToken:
            fetched.append(scopes[0])  # stands in for login.microsoftonline.com
            return AccessToken(token, 4_102_444_800)

        monkeypatch.setattr(credential, "get_token", fake_get_token)
        sim = make_sim(fake_time, write_quota=1, write_window_seconds=10.0, fault_rate=0.3)
        principals = await plain_users(sim, 3)
        errors: list[GraphError] = []
        async with sim.client(graph_settings, auth=GraphTokenAuth(credential)) as client:
            for principal in principals:
                try:
                    await client.create_eligibility_request(assign(principal))
                except GraphError as exc:
                    errors.append(exc)
            for missing in ("nobody@contoso.com", "ghost"):
                try:
                    await client.get_user(missing)
                except GraphError as exc:
                    errors.append(exc)
        await credential.close()

        assert fetched == ["https://graph.microsoft.com/.default"]
        assert captured_logs, "the run produced log events to inspect"
        assert any(e["event"].startswith("graph.retry.") for e in captured_logs)
        text = repr(captured_logs) + "".join(f"{e!s}{e!r}{e.args}" for e in errors)
        assert errors
        assert secret not in text
        assert token not in text
        assert "eyJ0eXAi" not in text
