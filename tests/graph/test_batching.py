"""$batch chunking rules and the batch answers the simulator can't produce."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.domain.tenant import GraphLimits
from app.graph.batching import chunk_requests
from app.graph.client import GraphClient
from app.graph.errors import (
    GraphOutcomeUnknownError,
    GraphServerError,
    GraphUnexpectedResponseError,
)
from app.graph.models import BatchRequest
from app.graph.requester import set_request_observer
from app.settings import GraphSettings

from .conftest import FakeTime


def get(item_id: str, depends_on: list[str] | None = None) -> BatchRequest:
    return BatchRequest(id=item_id, method="GET", url=f"/users/{item_id}", depends_on=depends_on)


def post(item_id: str) -> BatchRequest:
    return BatchRequest(id=item_id, method="POST", url="/things", body={"n": item_id})


class TestChunking:
    def test_twenty_per_chunk_in_order(self) -> None:
        chunks = chunk_requests([get(str(i)) for i in range(45)])
        assert [len(c) for c in chunks] == [20, 20, 5]
        assert [item.id for item in chunks[2]] == ["40", "41", "42", "43", "44"]

    def test_empty(self) -> None:
        assert chunk_requests([]) == []

    def test_duplicate_ids_refused(self) -> None:
        with pytest.raises(ValueError, match="unique"):
            chunk_requests([get("1"), get("1")])

    def test_dependency_in_the_same_chunk(self) -> None:
        assert len(chunk_requests([get("1"), get("2", ["1"])])) == 1

    def test_dependency_across_chunks_refused(self) -> None:
        items = [get(str(i)) for i in range(20)] + [get("x", ["0"])]
        with pytest.raises(ValueError, match="same batch"):
            chunk_requests(items)

    def test_forward_or_unknown_dependency_refused(self) -> None:
        with pytest.raises(ValueError):
            chunk_requests([get("1", ["2"]), get("2")])
        with pytest.raises(ValueError):
            chunk_requests([get("1", ["nope"])])


def scripted_graph(
    *answers: dict[str, Any],
) -> tuple[Callable[[httpx.Request], httpx.Response], list[dict[str, Any]]]:
    """A batch endpoint answering each POST with the next ``{"responses": [...]}`` body."""
    remaining = list(answers)
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=remaining.pop(0))

    return handler, bodies


def make_client(handler: Any, fake_time: FakeTime) -> GraphClient:
    return GraphClient(
        "https://graph.microsoft.com/v1.0",
        auth=None,
        transport=httpx.MockTransport(handler),
        settings=GraphSettings(),
        limits=GraphLimits(),
        sleeper=fake_time.sleep,
        clock=fake_time.clock,
    )


class TestAnswersOnlyAFaultyGraphGives:
    async def test_item_missing_from_the_answer(self, fake_time: FakeTime) -> None:
        handler, _ = scripted_graph({"responses": [{"id": "1", "status": 201, "body": {}}]})
        async with make_client(handler, fake_time) as client:
            results = await client.batch([post("1"), post("2"), get("3")])
        assert results["1"].ok
        assert isinstance(results["2"].error, GraphOutcomeUnknownError)
        assert isinstance(results["3"].error, GraphUnexpectedResponseError)

    async def test_write_item_with_a_proxy_503_is_unknown(self, fake_time: FakeTime) -> None:
        handler, bodies = scripted_graph(
            {
                "responses": [
                    {"id": "1", "status": 503, "body": "<html>busy</html>"},
                    {"id": "2", "status": 503, "body": "<html>busy</html>", "headers": {}},
                ]
            },
            {"responses": [{"id": "2", "status": 200, "body": {"id": "u"}}]},
        )
        async with make_client(handler, fake_time) as client:
            results = await client.batch([post("1"), get("2")])
        assert isinstance(results["1"].error, GraphOutcomeUnknownError)
        assert results["2"].ok
        assert [len(b["requests"]) for b in bodies] == [2, 1]

    async def test_graph_503_item_is_resent_even_for_a_write(self, fake_time: FakeTime) -> None:
        unavailable = {"error": {"code": "serviceNotAvailable", "message": "try later"}}
        handler, _ = scripted_graph(
            {
                "responses": [
                    {"id": "1", "status": 503, "body": unavailable, "headers": {"Retry-After": "2"}}
                ]
            },
            {"responses": [{"id": "1", "status": 201, "body": {"id": "created"}}]},
        )
        async with make_client(handler, fake_time) as client:
            results = await client.batch([post("1")])
        assert results["1"].ok
        assert fake_time.sleeps == [2.0]

    async def test_item_kept_failing_ends_as_exhausted(self, fake_time: FakeTime) -> None:
        unavailable = {"error": {"code": "serviceNotAvailable", "message": "try later"}}
        answer = {"responses": [{"id": "1", "status": 503, "body": unavailable}]}
        handler, bodies = scripted_graph(*[answer] * 6)
        async with make_client(handler, fake_time) as client:
            results = await client.batch([get("1")])
        error = results["1"].error
        assert error is not None
        assert error.status == 503
        assert isinstance(getattr(error, "last_error", None), GraphServerError)
        assert len(bodies) == GraphSettings().max_attempts

    async def test_dependants_of_a_throttled_item_go_along(self, fake_time: FakeTime) -> None:
        throttled = {"error": {"code": "TooManyRequests", "message": "later"}}
        handler, bodies = scripted_graph(
            {
                "responses": [
                    {"id": "2", "status": 424, "body": {"error": {"code": "FailedDependency"}}},
                    {
                        "id": "1",
                        "status": 429,
                        "headers": {"Retry-After": "1.5"},
                        "body": throttled,
                    },
                    {"id": "3", "status": 200, "body": {"id": "three"}},
                ]
            },
            {
                "responses": [
                    {"id": "1", "status": 200, "body": {"id": "one"}},
                    {"id": "2", "status": 200, "body": {"id": "two"}},
                ]
            },
        )
        async with make_client(handler, fake_time) as client:
            results = await client.batch([get("1"), get("2", ["1"]), get("3")])
        assert all(r.ok for r in results.values())
        assert bodies[1]["requests"] == [
            {"id": "1", "method": "GET", "url": "/users/1"},
            {"id": "2", "method": "GET", "url": "/users/2", "dependsOn": ["1"]},
        ]
        assert fake_time.sleeps == [1.5]


@dataclass
class ThrottleCounts:
    """What a metrics observer is told: 429s of whole requests and of items inside a batch."""

    envelopes: int = 0
    items: dict[str, int] = field(default_factory=dict)

    def graph_response(self, *, method: str, bucket: str, status: int, seconds: float) -> None:
        self.envelopes += status == 429

    def graph_transport_error(self, *, method: str, bucket: str, seconds: float) -> None:
        return None

    def graph_batch_items_throttled(self, *, bucket: str, items: int) -> None:
        self.items[bucket] = self.items.get(bucket, 0) + items


@pytest.fixture
def throttle_counts() -> Iterator[ThrottleCounts]:
    counts = ThrottleCounts()
    set_request_observer(counts)
    try:
        yield counts
    finally:
        set_request_observer(None)


class TestThrottledItemsAreObserved:
    async def test_each_throttled_item_counts_once(
        self, fake_time: FakeTime, throttle_counts: ThrottleCounts
    ) -> None:
        # The envelope is a 200 each time; only the metric on items shows the throttling.
        throttled = {"error": {"code": "TooManyRequests", "message": "later"}}
        handler, _ = scripted_graph(
            {
                "responses": [
                    {"id": "1", "status": 429, "headers": {"Retry-After": "1"}, "body": throttled},
                    {"id": "2", "status": 429, "headers": {"Retry-After": "1"}, "body": throttled},
                    {"id": "3", "status": 201, "body": {"id": "three"}},
                ]
            },
            {
                "responses": [
                    {"id": "1", "status": 429, "headers": {"Retry-After": "1"}, "body": throttled},
                    {"id": "2", "status": 201, "body": {"id": "two"}},
                ]
            },
            {"responses": [{"id": "1", "status": 201, "body": {"id": "one"}}]},
        )
        async with make_client(handler, fake_time) as client:
            results = await client.batch([post("1"), post("2"), post("3")])
        assert all(r.ok for r in results.values())
        assert throttle_counts.items == {"identity": 3}
        assert throttle_counts.envelopes == 0

    async def test_a_failed_envelope_is_not_counted_again_per_item(
        self, fake_time: FakeTime, throttle_counts: ThrottleCounts
    ) -> None:
        def always_throttled(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                429,
                headers={"Retry-After": "1"},
                json={"error": {"code": "TooManyRequests", "message": "later"}},
            )

        async with make_client(always_throttled, fake_time) as client:
            results = await client.batch([get("1"), get("2")])
        assert all(not r.ok for r in results.values())
        assert throttle_counts.envelopes >= 1
        assert throttle_counts.items == {}
