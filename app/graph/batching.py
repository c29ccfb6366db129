"""JSON ``$batch``: up to 20 requests per POST, each answered (and throttled) on its own.

Reference §2.4: the outer status is 200 even when items fail, items come back in any order
(correlated by ``id``), a throttled item carries its own ``Retry-After`` in its headers, and SDK
retry handlers don't retry items. Here a 429 item (and a 503/504 item that Graph itself answered)
was not applied, so it is re-sent in a new batch after the largest ``Retry-After`` — writes
included. Every other item outcome becomes a typed :class:`GraphError` in the result, never an
exception; a batch whose answer was lost gives every item of it ``GraphOutcomeUnknownError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import JsonValue

from app.graph.errors import (
    GraphDeadlineExceededError,
    GraphError,
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
    GraphUnexpectedResponseError,
)
from app.graph.models import MAX_BATCH_ITEMS, BatchRequest, BatchRequestBody, BatchResponse
from app.graph.requester import Bucket, GraphRequester, json_object
from app.graph.retry import Outcome, OutcomeKind
from app.logging import get_logger

log = get_logger(__name__)

BATCH_PATH = "/$batch"


def chunk_requests(requests: Sequence[BatchRequest]) -> list[list[BatchRequest]]:
    """Split into batches of at most 20, keeping order. Ids must be unique and every
    ``dependsOn`` must name an earlier item of the same batch (Graph can't link across batches)."""
    ids = [item.id for item in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("batch request ids must be unique")
    chunks = [
        list(requests[start : start + MAX_BATCH_ITEMS])
        for start in range(0, len(requests), MAX_BATCH_ITEMS)
    ]
    for chunk in chunks:
        earlier: set[str] = set()
        for item in chunk:
            for dependency in item.depends_on or []:
                if dependency not in earlier:
                    raise ValueError(
                        f"item {item.id!r} depends on {dependency!r}, which is not an earlier "
                        f"item of the same batch of {MAX_BATCH_ITEMS}"
                    )
            earlier.add(item.id)
    return chunks


async def send_batch(
    requester: GraphRequester, requests: Sequence[BatchRequest]
) -> dict[str, BatchResponse]:
    """Send ``requests`` as ``$batch`` POSTs of ≤20 (concurrently, under the client's bound).

    Returns one :class:`BatchResponse` per input id. Never raises :class:`GraphError`:
    failures, including the whole batch failing, are per-item ``error`` values.
    """
    chunks = chunk_requests(requests)
    results: dict[str, BatchResponse] = {}
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_send_chunk(requester, chunk)) for chunk in chunks]
    for task in tasks:
        results.update(task.result())
    return results


async def _send_chunk(
    requester: GraphRequester, chunk: list[BatchRequest]
) -> dict[str, BatchResponse]:
    by_id = {item.id: item for item in chunk}
    final: dict[str, BatchResponse] = {}
    pending = list(chunk)
    policy = requester.policy
    started = requester.clock()
    rounds = 0
    while pending:
        rounds += 1
        answers = await _post_once(requester, pending)
        retry: dict[str, float] = {}
        exhausted: dict[str, BatchResponse] = {}
        for item in pending:
            answer = answers[item.id]
            outcome = _item_outcome(item, answer)
            if outcome is None:
                final[item.id] = answer
                continue
            if not policy.is_retryable(outcome):
                final[item.id] = _settle(item, answer, outcome)
                continue
            delay = policy.delay_for(rounds, outcome, requester.clock() - started)
            if delay is None:
                exhausted[item.id] = answer
            else:
                retry[item.id] = delay
        _retry_dependants(pending, answers, retry)
        for item_id in retry:
            final.pop(item_id, None)
        for item_id, answer in exhausted.items():
            final[item_id] = _exhausted(answer, rounds, deadline=rounds < policy.max_attempts)
        for item in pending:
            if item.id not in retry and item.id not in final:
                final[item.id] = answers[item.id]
        if not retry:
            break
        delay = max(retry.values())
        throttled = [i for i in retry if answers[i].status == 429]
        if throttled:
            requester.gates[Bucket.identity].hold(delay)
        log.warning(
            "graph.retry.batch_items",
            attempt=rounds,
            delay=round(delay, 3),
            items=len(retry),
            throttled=len(throttled),
        )
        await requester.sleeper(delay)
        pending = [_without_settled_dependencies(by_id[i], retry) for i in by_id if i in retry]
    return final


def _item_outcome(item: BatchRequest, answer: BatchResponse) -> Outcome | None:
    """The retry view of an item's answer; ``None`` when it succeeded or was not retryable."""
    error = answer.error
    if error is None or answer.status is None:
        return None
    return Outcome(
        OutcomeKind.response,
        item.is_idempotent,
        status=answer.status,
        retry_after=error.retry_after,
        graph_error_body=error.has_graph_error_body,
    )


def _settle(item: BatchRequest, answer: BatchResponse, outcome: Outcome) -> BatchResponse:
    """A non-retryable failure; a write that may have been applied becomes an unknown outcome."""
    if outcome.may_have_been_applied and not outcome.idempotent and answer.error is not None:
        unknown = GraphOutcomeUnknownError(
            method=item.method,
            path=item.url,
            client_request_id=answer.error.client_request_id or "",
            reason=answer.error.message,
        )
        return BatchResponse(answer.id, answer.status, answer.headers, answer.body, unknown)
    return answer


def _exhausted(answer: BatchResponse, rounds: int, *, deadline: bool) -> BatchResponse:
    if answer.error is None:
        return answer
    kind = GraphDeadlineExceededError if deadline else GraphRetryExhaustedError
    return BatchResponse(
        answer.id, answer.status, answer.headers, answer.body, kind(answer.error, attempts=rounds)
    )


def _retry_dependants(
    pending: list[BatchRequest], answers: dict[str, BatchResponse], retry: dict[str, float]
) -> None:
    """Items that failed with 424 only because something they depend on is being retried go
    along in the next round (a batch is sequential with ``dependsOn``)."""
    changed = True
    while changed:
        changed = False
        for item in pending:
            if item.id in retry or answers[item.id].status != 424:
                continue
            if any(dependency in retry for dependency in item.depends_on or []):
                retry[item.id] = 0.0
                changed = True


def _without_settled_dependencies(item: BatchRequest, retry: dict[str, float]) -> BatchRequest:
    """Keep only dependencies that are re-sent too; the others already succeeded."""
    if not item.depends_on:
        return item
    kept = [dependency for dependency in item.depends_on if dependency in retry]
    return item.model_copy(update={"depends_on": kept or None})


async def _post_once(
    requester: GraphRequester, items: list[BatchRequest]
) -> dict[str, BatchResponse]:
    """One ``$batch`` POST (itself retried on 429/503/504 by the requester)."""
    body = BatchRequestBody(requests=items)
    writes = sum(1 for item in items if item.is_write)
    try:
        response = await requester.request(
            "POST",
            BATCH_PATH,
            json_body={"requests": [item.to_graph() for item in body.requests]},
            idempotent=all(item.is_idempotent for item in items),
            write_cost=writes,
        )
        payload = json_object(response)
    except GraphError as exc:
        return {item.id: BatchResponse(item.id, None, {}, None, exc) for item in items}
    answers = parse_batch_answers(payload, items, client_request_id=response.client_request_id)
    # The envelope was a 200, so the requester saw no 429: Graph throttles each item on its own.
    requester.observe_throttled_items(
        Bucket.identity, sum(1 for answer in answers.values() if answer.status == 429)
    )
    return answers


def parse_batch_answers(
    payload: dict[str, JsonValue],
    items: Sequence[BatchRequest],
    *,
    client_request_id: str | None = None,
) -> dict[str, BatchResponse]:
    """Correlate a ``$batch`` answer (``{"responses": [...]}``, any order) with its items.

    An item without an answer is a ``GraphOutcomeUnknownError`` if it was a write (it may have
    run), else a ``GraphUnexpectedResponseError``.
    """
    raw_items = payload.get("responses")
    answered: dict[str, BatchResponse] = {}
    by_id = {item.id: item for item in items}
    if isinstance(raw_items, list):
        for raw in raw_items:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                answer = _parse_item(raw, by_id=by_id)
                answered[answer.id] = answer
    result: dict[str, BatchResponse] = {}
    for item in items:
        if item.id in answered:
            result[item.id] = answered[item.id]
            continue
        missing: GraphError = (
            GraphOutcomeUnknownError(
                method=item.method,
                path=item.url,
                client_request_id=client_request_id or "",
                reason="the batch answer has no response for this item",
            )
            if item.is_write
            else GraphUnexpectedResponseError(
                "the batch answer has no response for this item",
                method=item.method,
                path=item.url,
                client_request_id=client_request_id,
            )
        )
        result[item.id] = BatchResponse(item.id, None, {}, None, missing)
    return result


def _parse_item(raw: dict[str, JsonValue], *, by_id: dict[str, BatchRequest]) -> BatchResponse:
    item_id = str(raw["id"])
    status = raw.get("status")
    raw_headers = raw.get("headers")
    headers = (
        {str(key): str(value) for key, value in raw_headers.items()}
        if isinstance(raw_headers, dict)
        else {}
    )
    body = raw.get("body")
    request = by_id.get(item_id)
    if not isinstance(status, int):
        error: GraphError | None = GraphUnexpectedResponseError(
            "batch item without a status", method=request.method if request else None
        )
        return BatchResponse(item_id, None, headers, body, error)
    error = None
    if not 200 <= status < 300:
        error_body = body if isinstance(body, dict | str) else None
        error = GraphError.from_response(
            status,
            headers,
            error_body,
            method=request.method if request else None,
            path=request.url if request else None,
        )
    return BatchResponse(item_id, status, headers, body, error)
