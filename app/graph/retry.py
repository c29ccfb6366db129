"""When to retry a Graph call, how long to wait, and the loop that does it.

:class:`RetryPolicy` is pure (no I/O, no clock reads): given what happened on an attempt it says
whether and how long to wait. :func:`send_with_retries` runs attempts, sleeps with an injected
async sleeper (never ``time.sleep``: kiota's retry handler blocks the event loop that way) and
turns the final outcome into a typed error.

Which outcomes are retried (kiota ``DEFAULT_RETRY_STATUS_CODES`` + connection errors):

* ``429`` — always: Graph throttled the request before processing it, writes included.
* ``503`` / ``504`` **with Graph's error envelope** — Graph's front end answered that the service
  was unavailable / timed out, so the change was not applied: retried for writes too. The same
  statuses **without** a Graph envelope (a load balancer's HTML page, an empty gateway timeout)
  may come from a proxy that gave up while Graph was still working, so for a write they are an
  unknown outcome. This is our reading; the reference does not document which 5xx are safe.
* ``500`` / ``502`` — only for idempotent requests (reads, DELETE). Beyond kiota's defaults: a
  read can't do harm by being repeated, and a transient 500 on page 57 of an inventory should not
  fail the whole tick. A write answered 500/502 is raised (``GraphServerError``); verify it.
* Not sent (connect failure, connect/pool timeout) — always: nothing reached Graph.
* Sent but lost (read/write timeout, dropped connection, our own per-request timeout) — only for
  idempotent requests (GET, DELETE, read-only POSTs). For a write it is an unknown outcome: the
  caller must read the target state before re-sending (``GraphOutcomeUnknownError``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from app.graph.errors import (
    GraphDeadlineExceededError,
    GraphError,
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
)
from app.logging import get_logger

log = get_logger(__name__)

RETRYABLE_STATUSES = frozenset({429, 503, 504})
RETRYABLE_READ_STATUSES = RETRYABLE_STATUSES | {500, 502}


class OutcomeKind(StrEnum):
    response = "response"
    """An HTTP answer arrived (any status)."""
    not_sent = "not_sent"
    """The request never left: connect failure, connect or pool timeout."""
    lost = "lost"
    """The request was (or may have been) sent but no answer arrived."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced, reduced to what the retry decision needs."""

    kind: OutcomeKind
    idempotent: bool
    status: int | None = None
    retry_after: float | None = None
    graph_error_body: bool = False

    @property
    def may_have_been_applied(self) -> bool:
        """True when a write might have taken effect although we have no success answer."""
        if self.kind is OutcomeKind.lost:
            return True
        return (
            self.kind is OutcomeKind.response
            and self.status in (503, 504)
            and not self.graph_error_body
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Pure retry decisions: attempt cap, total deadline, ``Retry-After``, jittered backoff.

    Backoff follows stripe-python's ``_sleep_time_seconds``: ``base * 2**(attempt-1)`` capped at
    ``cap``, then jittered to 50-100 % of itself and never below ``base``. A ``Retry-After`` from
    Graph is used as given (not capped, not jittered): Graph knows when its bucket refills.
    """

    max_attempts: int
    base: float
    cap: float
    total_deadline: float
    rng: random.Random

    def is_retryable(self, outcome: Outcome) -> bool:
        """Whether this kind of outcome may be retried at all (ignoring attempts and deadline)."""
        if outcome.kind is OutcomeKind.not_sent:
            return True
        if outcome.kind is OutcomeKind.lost:
            return outcome.idempotent
        if outcome.status == 429:
            return True
        if outcome.status in (503, 504):
            return outcome.idempotent or outcome.graph_error_body
        return outcome.idempotent and outcome.status in RETRYABLE_READ_STATUSES

    def backoff(self, attempt: int) -> float:
        """Jittered exponential delay after ``attempt`` failed attempts (1-based)."""
        exponent = max(0, attempt - 1)
        raw = self.cap if exponent >= 64 else min(self.cap, self.base * (2.0**exponent))
        jittered = raw * 0.5 * (1.0 + self.rng.uniform(0.0, 1.0))
        return min(self.cap, max(self.base, jittered))

    def delay_for(self, attempt: int, outcome: Outcome, elapsed: float) -> float | None:
        """Seconds to sleep before attempt ``attempt + 1``, or ``None`` to stop.

        ``attempt`` counts the attempts made so far (1 after the first failure); ``elapsed`` is
        the time since the call started. Stops when the outcome is not retryable, when
        ``max_attempts`` attempts were made, or when the sleep would end past the deadline.
        """
        if not self.is_retryable(outcome) or attempt >= self.max_attempts:
            return None
        delay = outcome.retry_after if outcome.retry_after is not None else self.backoff(attempt)
        if elapsed + delay > self.total_deadline:
            return None
        return delay


@dataclass(frozen=True)
class CallInfo:
    """Identity of one logical call, reused by every attempt of it (and in logs and errors)."""

    method: str
    path: str
    client_request_id: str
    idempotent: bool


@dataclass(frozen=True)
class GraphResponse:
    """A successful (2xx) answer, detached from httpx."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    request_id: str | None
    client_request_id: str


@dataclass(frozen=True)
class AttemptResult:
    """One attempt: either ``response`` (2xx) or ``error`` (typed), plus the outcome summary."""

    outcome: Outcome
    response: GraphResponse | None = None
    error: GraphError | None = None


Sleeper = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


def _event_for(outcome: Outcome) -> str:
    if outcome.kind is not OutcomeKind.response:
        return "graph.retry.connection"
    if outcome.status == 429:
        return "graph.retry.throttled"
    return "graph.retry.server_error"


async def send_with_retries(
    attempt: Callable[[], Awaitable[AttemptResult]],
    *,
    call: CallInfo,
    policy: RetryPolicy,
    sleeper: Sleeper,
    clock: Clock,
    on_throttled: Callable[[float], None] | None = None,
) -> GraphResponse:
    """Run ``attempt`` until it succeeds, fails for good, or the policy gives up.

    Raises the final attempt's typed error for non-retryable answers,
    :class:`GraphOutcomeUnknownError` when a write may have been applied,
    :class:`GraphRetryExhaustedError` / :class:`GraphDeadlineExceededError` when retries ran out.
    ``on_throttled(delay)`` is told about each 429 so the caller can hold back other requests.
    """
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        result = await attempt()
        if result.response is not None:
            return result.response
        error = result.error
        if error is None:  # pragma: no cover - AttemptResult is built with one of the two
            raise RuntimeError("attempt produced neither a response nor an error")
        outcome = result.outcome
        if not policy.is_retryable(outcome):
            if outcome.may_have_been_applied and not outcome.idempotent:
                raise GraphOutcomeUnknownError(
                    method=call.method,
                    path=call.path,
                    client_request_id=call.client_request_id,
                    reason=error.message,
                ) from error
            raise error
        delay = policy.delay_for(attempts, outcome, clock() - started)
        if delay is None:
            exhausted = (
                GraphRetryExhaustedError
                if attempts >= policy.max_attempts
                else GraphDeadlineExceededError
            )
            raise exhausted(error, attempts=attempts) from error
        log.warning(
            _event_for(outcome),
            method=call.method,
            path=call.path,
            attempt=attempts,
            delay=round(delay, 3),
            status=outcome.status,
            code=error.code,
            request_id=error.request_id,
            client_request_id=call.client_request_id,
        )
        if outcome.status == 429 and on_throttled is not None:
            on_throttled(delay)
        await sleeper(delay)
