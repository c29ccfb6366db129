"""Transport conditions the simulator can't produce (connection refused, read timeouts, foreign
links), driven through ``httpx.MockTransport``; everything else is tested against the simulator."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.domain.tenant import GraphLimits
from app.graph.client import GraphClient
from app.graph.errors import (
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
    GraphTransportError,
    GraphUnexpectedResponseError,
)
from app.graph.models import MailMessage, ScheduleRequestAction, ScheduleRequestCreate
from app.graph.requester import encode_query, odata_quote, path_segment
from app.settings import GraphSettings

from .conftest import FakeTime

BASE = "https://graph.microsoft.com/v1.0"
REMOVE = ScheduleRequestCreate(
    action=ScheduleRequestAction.admin_remove, principal_id="p", role_definition_id="r"
)
REQUEST_BODY = {"id": "req-1", "status": "Revoked", "action": "adminRemove"}

Handler = Callable[[httpx.Request], Any]


def make_client(
    handler: Handler,
    fake_time: FakeTime,
    settings: GraphSettings,
    limits: GraphLimits | None = None,
) -> GraphClient:
    return GraphClient(
        BASE,
        auth=None,
        transport=httpx.MockTransport(handler),
        settings=settings,
        limits=limits or GraphLimits(),
        sleeper=fake_time.sleep,
        clock=fake_time.clock,
    )


class Script:
    """Answers requests from a list of callables/exceptions, recording what was sent."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            answer: httpx.Response = await step(request)
            return answer
        assert isinstance(step, httpx.Response)
        return step


def ok(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"request-id": "rid-ok"})


async def hang(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(30)
    raise AssertionError("not reached")


@pytest.fixture
def fast_settings() -> GraphSettings:
    return GraphSettings(
        max_concurrency=4,
        max_attempts=3,
        total_deadline_seconds=60.0,
        request_timeout_seconds=0.2,
        connect_timeout_seconds=0.1,
        backoff_base_seconds=0.5,
        backoff_max_seconds=4.0,
    )


class TestConnectionFailures:
    async def test_refused_connection_is_retried_even_for_a_write(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.ConnectError("refused"), ok(REQUEST_BODY, 201))
        async with make_client(script, fake_time, fast_settings) as client:
            created = await client.create_assignment_request(REMOVE)
        assert created.id == "req-1"
        assert len(script.requests) == 2
        assert len(fake_time.sleeps) == 1

    async def test_refused_connection_gives_up_after_max_attempts(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.ConnectError("refused"))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphRetryExhaustedError) as caught:
                await client.get_user("someone")
        assert isinstance(caught.value.last_error, GraphTransportError)
        assert caught.value.status is None
        assert len(script.requests) == 3

    async def test_pool_timeout_is_retried(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.PoolTimeout("pool"), ok({"id": "u"}))
        async with make_client(script, fake_time, fast_settings) as client:
            assert (await client.get_user("u")).id == "u"


class TestAnswerLost:
    @pytest.mark.parametrize(
        "failure",
        [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("reset")],
        ids=["read-timeout", "dropped", "reset"],
    )
    async def test_write_is_not_resent(
        self, fake_time: FakeTime, fast_settings: GraphSettings, failure: Exception
    ) -> None:
        script = Script(failure, ok(REQUEST_BODY, 201))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphOutcomeUnknownError) as caught:
                await client.create_assignment_request(REMOVE)
        assert len(script.requests) == 1
        error = caught.value
        assert error.method == "POST"
        assert error.path == "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
        assert error.client_request_id == script.requests[0].headers["client-request-id"]

    async def test_hang_past_the_request_timeout_is_unknown_for_a_write(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(hang)
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphOutcomeUnknownError, match="timed out"):
                await client.send_mail(
                    "sender@contoso.com",
                    MailMessage.model_validate({"subject": "s", "body": {"content": "c"}}),
                )
        assert len(script.requests) == 1

    async def test_read_is_retried_after_a_hang(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(hang, ok({"id": "g1"}))
        async with make_client(script, fake_time, fast_settings) as client:
            assert (await client.get_group("g1")).id == "g1"
        assert len(script.requests) == 2

    async def test_delete_is_retried_after_a_lost_answer(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.ReadTimeout("slow"), httpx.Response(204))
        async with make_client(script, fake_time, fast_settings) as client:
            await client.delete_access_review_definition("def-1")
        assert len(script.requests) == 2

    async def test_read_only_post_is_retried(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(
            httpx.ReadTimeout("slow"),
            ok({"value": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}]}),
        )
        async with make_client(script, fake_time, fast_settings) as client:
            found = await client.get_directory_objects(["u1"])
        assert [o.id for o in found] == ["u1"]

    async def test_lost_batch_with_writes_is_unknown_for_every_item(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.ReadTimeout("slow"))
        async with make_client(script, fake_time, fast_settings) as client:
            results = await client.create_schedule_requests("eligibility", [REMOVE, REMOVE])
        assert len(script.requests) == 1
        assert all(isinstance(r, GraphOutcomeUnknownError) for r in results)


class TestRequestShape:
    async def test_client_request_id_is_fresh_per_call_and_kept_across_retries(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.ConnectError("refused"), ok({"id": "u"}))
        async with make_client(script, fake_time, fast_settings) as client:
            await client.get_user("u")
            await client.get_user("u")
        ids = [r.headers["client-request-id"] for r in script.requests]
        assert ids[0] == ids[1] != ids[2]
        assert all(uuid.UUID(value).version == 4 for value in ids)

    async def test_no_authorization_header_is_invented(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(ok({"id": "u"}))
        async with make_client(script, fake_time, fast_settings) as client:
            await client.get_user("u")
        assert "authorization" not in script.requests[0].headers

    async def test_filters_are_quoted_and_encoded(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(ok({"value": []}))
        async with make_client(script, fake_time, fast_settings) as client:
            [
                _
                async for _ in client.iter_assignment_schedule_instances(
                    role_definition_id="62e90394",
                    principal_id="o'brien",
                    member_type="Direct",
                    expand_principal=True,
                )
            ]
        url = str(script.requests[0].url)
        assert url == (
            f"{BASE}/roleManagement/directory/roleAssignmentScheduleInstances?"
            "$filter=roleDefinitionId%20eq%20'62e90394'%20and%20principalId%20eq%20'o''brien'"
            "%20and%20memberType%20eq%20'Direct'&$expand=principal"
        )

    def test_helpers(self) -> None:
        assert odata_quote("it's") == "'it''s'"
        assert path_segment("guest_contoso.com#EXT#@tenant.onmicrosoft.com") == (
            "guest_contoso.com%23EXT%23@tenant.onmicrosoft.com"
        )
        assert encode_query({"$filter": "a eq 'b+c'", "$expand": "policy($expand=rules)"}) == (
            "$filter=a%20eq%20'b%2Bc'&$expand=policy($expand%3Drules)"
        )

    async def test_audit_filter(self, fake_time: FakeTime, fast_settings: GraphSettings) -> None:
        import datetime as dt

        script = Script(ok({"value": []}))
        async with make_client(script, fake_time, fast_settings) as client:
            since = dt.datetime(2025, 1, 6, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
            [
                _
                async for _ in client.iter_directory_audits(
                    since=since, activity_display_name="Update role setting in PIM"
                )
            ]
            with pytest.raises(ValueError, match="aware"):
                [_ async for _ in client.iter_directory_audits(since=dt.datetime(2025, 1, 1))]
        assert script.requests[0].url.params["$filter"] == (
            "activityDateTime ge 2025-01-06T09:00:00Z and "
            "activityDisplayName eq 'Update role setting in PIM'"
        )


class TestPagingSafety:
    async def test_next_link_to_another_host_is_refused(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(
            ok(
                {
                    "value": [{"id": "g", "displayName": "x"}],
                    "@odata.nextLink": "https://evil.example/v1.0/next?$skiptoken=x",
                }
            )
        )
        async with make_client(script, fake_time, fast_settings) as client:
            members = client.iter_group_transitive_members("g")
            first = await anext(members)
            with pytest.raises(GraphUnexpectedResponseError, match=r"evil\.example"):
                await anext(members)
        assert first.id == "g"
        assert len(script.requests) == 1

    async def test_next_link_pointing_at_itself_stops(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        link = f"{BASE}/groups/g/transitiveMembers?$skiptoken=same"
        script = Script(ok({"value": [{"id": "a"}], "@odata.nextLink": link}))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphUnexpectedResponseError, match="page just read"):
                [_ async for _ in client.iter_group_transitive_members("g")]
        assert len(script.requests) == 2

    async def test_non_json_success_is_unexpected(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(httpx.Response(200, text="<html>portal</html>"))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphUnexpectedResponseError):
                await client.get_user("u")

    async def test_success_of_the_wrong_shape_is_unexpected(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(ok({"displayName": "no id"}))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphUnexpectedResponseError, match="User"):
                await client.get_user("u")

    async def test_collection_without_value(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        script = Script(ok({"error": "nope"}))
        async with make_client(script, fake_time, fast_settings) as client:
            with pytest.raises(GraphUnexpectedResponseError, match="value"):
                await client.list_subscribed_skus()


class TestLifecycle:
    async def test_closed_client_refuses(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        client = make_client(Script(ok({"id": "u"})), fake_time, fast_settings)
        await client.aclose()
        with pytest.raises(GraphTransportError, match="closed"):
            await client.get_user("u")

    async def test_close_waits_for_requests_in_flight(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        release = asyncio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return ok({"id": "u"})

        settings = fast_settings.model_copy(update={"request_timeout_seconds": 5.0})
        client = make_client(Script(slow), fake_time, settings)
        pending = asyncio.create_task(client.get_user("u"))
        await asyncio.sleep(0.01)
        closing = asyncio.create_task(client.aclose())
        await asyncio.sleep(0.01)
        assert not closing.done()
        release.set()
        assert (await pending).id == "u"
        await closing

    async def test_invalid_url_scheme_is_a_transport_error(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        client = GraphClient(
            "ftp://graph.example/v1.0",
            auth=None,
            settings=fast_settings,
            limits=GraphLimits(),
            sleeper=fake_time.sleep,
            clock=fake_time.clock,
        )
        async with client:
            with pytest.raises(GraphTransportError, match="UnsupportedProtocol"):
                await client.get_user("u")


class TestConcurrencyAndPacing:
    async def test_concurrency_never_exceeds_the_bound(self, fake_time: FakeTime) -> None:
        in_flight = 0
        peak = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
            return ok({"id": "u"})

        settings = GraphSettings(max_concurrency=8, request_timeout_seconds=5.0)
        limits = GraphLimits(max_concurrency=3)
        async with make_client(handler, fake_time, settings, limits) as client:
            await asyncio.gather(*(client.get_user(str(i)) for i in range(20)))
        assert peak == 3

    async def test_writes_are_paced(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        limits = GraphLimits(write_quota=10, write_window_seconds=10.0, pacing_share=1.0)
        script = Script(lambda_ok(REQUEST_BODY, 201))
        async with make_client(script, fake_time, fast_settings, limits) as client:
            for _ in range(5):
                await client.create_eligibility_request(REMOVE)
        assert fake_time.now - 1000.0 == pytest.approx(4.0)

    async def test_throttle_percentage_slows_the_write_pacer(
        self, fake_time: FakeTime, fast_settings: GraphSettings
    ) -> None:
        async def near_limit(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                201, json=REQUEST_BODY, headers={"x-ms-throttle-limit-percentage": "0.85"}
            )

        limits = GraphLimits(write_quota=10, write_window_seconds=10.0, pacing_share=1.0)
        async with make_client(Script(near_limit), fake_time, fast_settings, limits) as client:
            for _ in range(3):
                await client.create_eligibility_request(REMOVE)
        assert fake_time.now - 1000.0 == pytest.approx(3.0)  # 1 s, then 2 s at half rate

    async def test_a_429_holds_back_concurrent_requests(self, fast_settings: GraphSettings) -> None:
        # Real (short) time: the point is what a *different* task does while one task waits
        # out a Retry-After.
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []
        throttled = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            seen.append((request.url.path, loop.time()))
            if not throttled.is_set():
                throttled.set()
                return httpx.Response(
                    429, headers={"Retry-After": "0.3"}, json={"error": {"code": "TooManyRequests"}}
                )
            return ok({"id": "x"})

        client = GraphClient(
            BASE,
            auth=None,
            transport=httpx.MockTransport(handler),
            settings=fast_settings,
            limits=GraphLimits(),
        )
        async with client:
            first = asyncio.create_task(client.get_user("a"))
            await throttled.wait()
            await asyncio.sleep(0.05)  # the 429 has been handled; the gate is closed
            await client.get_group("b")
            await first
        throttled_at = seen[0][1]
        group_at = next(t for path, t in seen if path.endswith("/groups/b"))
        assert group_at - throttled_at >= 0.29


def lambda_ok(body: dict[str, Any], status: int) -> Callable[[httpx.Request], Any]:
    async def answer(request: httpx.Request) -> httpx.Response:
        json.loads(request.content)
        return ok(body, status)

    return answer
