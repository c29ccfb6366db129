"""RetryPolicy (pure) and the retrying send loop."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app.graph.errors import (
    GraphDeadlineExceededError,
    GraphError,
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
    GraphServerError,
    GraphThrottledError,
    GraphTransportError,
    parse_retry_after,
)
from app.graph.retry import (
    AttemptResult,
    CallInfo,
    GraphResponse,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    send_with_retries,
)

from .conftest import FakeTime


def policy(**overrides: object) -> RetryPolicy:
    values: dict[str, object] = {
        "max_attempts": 5,
        "base": 0.5,
        "cap": 8.0,
        "total_deadline": 60.0,
        "rng": random.Random(7),
    }
    values.update(overrides)
    return RetryPolicy(**values)  # type: ignore[arg-type]


def response(
    status: int,
    *,
    idempotent: bool = True,
    retry_after: float | None = None,
    graph_body: bool = True,
) -> Outcome:
    return Outcome(
        OutcomeKind.response,
        idempotent,
        status=status,
        retry_after=retry_after,
        graph_error_body=graph_body,
    )


class TestRetryAfterParsing:
    NOW = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)

    def test_fractional_seconds(self) -> None:
        assert parse_retry_after("2.128", now=self.NOW) == pytest.approx(2.128)

    def test_integer_seconds(self) -> None:
        assert parse_retry_after("10", now=self.NOW) == 10.0

    def test_http_date_is_seconds_from_now(self) -> None:
        assert parse_retry_after("Mon, 06 Jan 2025 09:00:30 GMT", now=self.NOW) == 30.0

    def test_http_date_in_the_past_means_now(self) -> None:
        assert parse_retry_after("Mon, 06 Jan 2025 08:00:00 GMT", now=self.NOW) == 0.0

    def test_negative_seconds_clamp_to_zero(self) -> None:
        assert parse_retry_after("-3", now=self.NOW) == 0.0

    @pytest.mark.parametrize("garbage", ["soon", "", "nan", "inf"])
    def test_garbage_is_ignored(self, garbage: str) -> None:
        assert parse_retry_after(garbage, now=self.NOW) is None


class TestRetryPolicyDecisions:
    @pytest.mark.parametrize("status", [429, 503, 504])
    def test_retries_transient_statuses_for_reads(self, status: int) -> None:
        assert policy().delay_for(1, response(status), elapsed=0.0) is not None

    @pytest.mark.parametrize("status", [500, 502])
    def test_retries_server_errors_for_reads_only(self, status: int) -> None:
        assert policy().delay_for(1, response(status), elapsed=0.0) is not None
        assert policy().delay_for(1, response(status, idempotent=False), elapsed=0.0) is None

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 412, 424, 501])
    def test_does_not_retry_other_statuses(self, status: int) -> None:
        assert policy().delay_for(1, response(status), elapsed=0.0) is None

    def test_write_throttled_is_retried(self) -> None:
        assert policy().delay_for(1, response(429, idempotent=False), elapsed=0.0) is not None

    @pytest.mark.parametrize("status", [503, 504])
    def test_write_5xx_from_graph_is_retried(self, status: int) -> None:
        outcome = response(status, idempotent=False, graph_body=True)
        assert policy().delay_for(1, outcome, elapsed=0.0) is not None
        assert not outcome.may_have_been_applied

    @pytest.mark.parametrize("status", [503, 504])
    def test_write_5xx_without_graph_body_is_not_retried(self, status: int) -> None:
        outcome = response(status, idempotent=False, graph_body=False)
        assert policy().delay_for(1, outcome, elapsed=0.0) is None
        assert outcome.may_have_been_applied

    def test_not_sent_is_retried_even_for_writes(self) -> None:
        outcome = Outcome(OutcomeKind.not_sent, idempotent=False)
        assert policy().delay_for(1, outcome, elapsed=0.0) is not None
        assert not outcome.may_have_been_applied

    def test_lost_answer_is_retried_for_reads_only(self) -> None:
        read = Outcome(OutcomeKind.lost, idempotent=True)
        write = Outcome(OutcomeKind.lost, idempotent=False)
        assert policy().delay_for(1, read, elapsed=0.0) is not None
        assert policy().delay_for(1, write, elapsed=0.0) is None
        assert write.may_have_been_applied

    def test_retry_after_is_used_as_given(self) -> None:
        outcome = response(429, retry_after=2.128)
        assert policy().delay_for(3, outcome, elapsed=0.0) == pytest.approx(2.128)

    def test_retry_after_longer_than_the_cap_is_still_honoured(self) -> None:
        outcome = response(429, retry_after=20.0)
        assert policy(cap=8.0).delay_for(1, outcome, elapsed=0.0) == 20.0

    def test_stops_at_the_attempt_cap(self) -> None:
        p = policy(max_attempts=3)
        assert p.delay_for(2, response(503), elapsed=0.0) is not None
        assert p.delay_for(3, response(503), elapsed=0.0) is None

    def test_stops_when_the_sleep_would_pass_the_deadline(self) -> None:
        p = policy(total_deadline=10.0)
        assert p.delay_for(1, response(429, retry_after=4.0), elapsed=5.0) == 4.0
        assert p.delay_for(1, response(429, retry_after=6.0), elapsed=5.0) is None


class TestBackoff:
    def test_grows_exponentially_within_jitter_bounds(self) -> None:
        p = policy(base=0.5, cap=100.0)
        for attempt in range(1, 8):
            raw = 0.5 * 2 ** (attempt - 1)
            for _ in range(50):
                delay = p.backoff(attempt)
                assert max(0.5, raw * 0.5) <= delay <= raw

    def test_is_capped(self) -> None:
        p = policy(base=0.5, cap=8.0)
        assert all(p.backoff(attempt) <= 8.0 for attempt in range(1, 200))
        assert all(p.backoff(30) >= 4.0 for _ in range(50))

    def test_never_below_base(self) -> None:
        p = policy(base=1.0, cap=8.0)
        assert all(p.backoff(1) == 1.0 for _ in range(20))

    def test_jitter_varies(self) -> None:
        p = policy(base=0.5, cap=100.0)
        assert len({round(p.backoff(6), 6) for _ in range(20)}) > 1

    def test_used_without_retry_after(self) -> None:
        p = policy(base=0.5, cap=100.0)
        delay = p.delay_for(4, response(503), elapsed=0.0)
        assert delay is not None
        assert 2.0 <= delay <= 4.0


CALL = CallInfo(method="GET", path="/v1.0/things", client_request_id="crid-1", idempotent=True)
WRITE = CallInfo(method="POST", path="/v1.0/things", client_request_id="crid-2", idempotent=False)
OK = GraphResponse(status=200, headers={}, content=b"{}", request_id="rid", client_request_id="c")


def failure(
    status: int | None,
    *,
    kind: OutcomeKind = OutcomeKind.response,
    idempotent: bool = True,
    retry_after: float | None = None,
    graph_body: bool = True,
) -> AttemptResult:
    error: GraphError
    if status == 429:
        error = GraphThrottledError(
            "slow down", status=429, code="TooManyRequests", retry_after=retry_after
        )
    elif status is None:
        error = GraphTransportError("no answer")
    else:
        error = GraphServerError(
            "oops", status=status, code="serviceUnavailable" if graph_body else None
        )
    return AttemptResult(
        outcome=Outcome(
            kind, idempotent, status=status, retry_after=retry_after, graph_error_body=graph_body
        ),
        error=error,
    )


def scripted(
    *results: AttemptResult,
) -> tuple[Callable[[], Awaitable[AttemptResult]], list[int]]:
    remaining = list(results)
    calls: list[int] = []

    async def attempt() -> AttemptResult:
        calls.append(1)
        return remaining.pop(0)

    return attempt, calls


class TestSendWithRetries:
    async def test_returns_after_throttling_and_sleeps_retry_after(
        self, fake_time: FakeTime, captured_logs: list[dict[str, Any]]
    ) -> None:
        attempt, _ = scripted(
            failure(429, retry_after=2.128),
            AttemptResult(outcome=Outcome(OutcomeKind.response, True, status=200), response=OK),
        )
        held: list[float] = []
        result = await send_with_retries(
            attempt,
            call=CALL,
            policy=policy(),
            sleeper=fake_time.sleep,
            clock=fake_time.clock,
            on_throttled=held.append,
        )
        assert result is OK
        assert fake_time.sleeps == [pytest.approx(2.128)]
        assert held == [pytest.approx(2.128)]
        event = next(e for e in captured_logs if e["event"] == "graph.retry.throttled")
        assert event["attempt"] == 1
        assert event["client_request_id"] == "crid-1"

    async def test_server_errors_logged_as_server_error(
        self, fake_time: FakeTime, captured_logs: list[dict[str, Any]]
    ) -> None:
        attempt, _ = scripted(
            failure(503),
            AttemptResult(outcome=Outcome(OutcomeKind.response, True, status=200), response=OK),
        )
        await send_with_retries(
            attempt, call=CALL, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
        )
        assert [e["event"] for e in captured_logs] == ["graph.retry.server_error"]

    async def test_connection_errors_logged_as_connection(
        self, fake_time: FakeTime, captured_logs: list[dict[str, Any]]
    ) -> None:
        attempt, _ = scripted(
            failure(None, kind=OutcomeKind.not_sent),
            AttemptResult(outcome=Outcome(OutcomeKind.response, True, status=200), response=OK),
        )
        await send_with_retries(
            attempt, call=CALL, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
        )
        assert [e["event"] for e in captured_logs] == ["graph.retry.connection"]

    async def test_non_retryable_error_is_raised_as_is(self, fake_time: FakeTime) -> None:
        error = GraphError("bad", status=400, code="BadRequest")
        attempt, calls = scripted(
            AttemptResult(outcome=Outcome(OutcomeKind.response, True, status=400), error=error)
        )
        with pytest.raises(GraphError) as caught:
            await send_with_retries(
                attempt, call=CALL, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
            )
        assert caught.value is error
        assert len(calls) == 1

    async def test_attempt_cap_raises_exhausted_with_last_error(self, fake_time: FakeTime) -> None:
        attempt, calls = scripted(*[failure(503) for _ in range(3)])
        with pytest.raises(GraphRetryExhaustedError) as caught:
            await send_with_retries(
                attempt,
                call=CALL,
                policy=policy(max_attempts=3),
                sleeper=fake_time.sleep,
                clock=fake_time.clock,
            )
        assert not isinstance(caught.value, GraphDeadlineExceededError)
        assert caught.value.status == 503
        assert isinstance(caught.value.last_error, GraphServerError)
        assert caught.value.attempts == 3
        assert len(calls) == 3
        assert len(fake_time.sleeps) == 2

    async def test_deadline_raises_deadline_exceeded(self, fake_time: FakeTime) -> None:
        attempt, _ = scripted(failure(429, retry_after=30.0), failure(429, retry_after=40.0))
        with pytest.raises(GraphDeadlineExceededError) as caught:
            await send_with_retries(
                attempt,
                call=CALL,
                policy=policy(total_deadline=60.0),
                sleeper=fake_time.sleep,
                clock=fake_time.clock,
            )
        assert caught.value.status == 429
        assert caught.value.reason == "deadline"
        assert fake_time.sleeps == [30.0]

    async def test_lost_write_is_an_unknown_outcome(self, fake_time: FakeTime) -> None:
        attempt, calls = scripted(failure(None, kind=OutcomeKind.lost, idempotent=False))
        with pytest.raises(GraphOutcomeUnknownError) as caught:
            await send_with_retries(
                attempt, call=WRITE, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
            )
        assert caught.value.method == "POST"
        assert caught.value.path == "/v1.0/things"
        assert caught.value.client_request_id == "crid-2"
        assert len(calls) == 1
        assert fake_time.sleeps == []

    async def test_write_gateway_timeout_without_graph_body_is_unknown(
        self, fake_time: FakeTime
    ) -> None:
        attempt, calls = scripted(failure(504, idempotent=False, graph_body=False))
        with pytest.raises(GraphOutcomeUnknownError):
            await send_with_retries(
                attempt, call=WRITE, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
            )
        assert len(calls) == 1

    async def test_lost_read_is_retried(self, fake_time: FakeTime) -> None:
        attempt, calls = scripted(
            failure(None, kind=OutcomeKind.lost),
            AttemptResult(outcome=Outcome(OutcomeKind.response, True, status=200), response=OK),
        )
        assert (
            await send_with_retries(
                attempt, call=CALL, policy=policy(), sleeper=fake_time.sleep, clock=fake_time.clock
            )
            is OK
        )
        assert len(calls) == 2
