"""The HTTP core under :class:`~app.graph.client.GraphClient`: one exchange with Graph, done right.

Every request gets a ``client-request-id``, waits for its bucket's throttle gate and pacers, takes
a slot of the per-tenant concurrency bound, is sent with an explicit timeout, and is retried per
:mod:`app.graph.retry`. Answers come back as :class:`GraphResponse` or typed errors; nothing above
this module touches httpx.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx

# httpcore imports sniffio whenever a connection pool closes, on the event loop: imported once
# here, that import costs nothing there.
import sniffio  # noqa: F401
from pydantic import JsonValue

from app.domain.tenant import GraphLimits
from app.graph.errors import (
    GraphError,
    GraphTransportError,
    GraphUnexpectedResponseError,
)
from app.graph.models import JsonObject
from app.graph.pacing import Pacer, reports_pacer_for, write_pacer_for
from app.graph.retry import (
    AttemptResult,
    CallInfo,
    GraphResponse,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    send_with_retries,
)
from app.logging import get_logger
from app.settings import GraphSettings

log = get_logger(__name__)

USER_AGENT = "pim-rollout/0.1 (httpx)"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
# Kept literal in query values: OData's own punctuation. Everything else (space, '+', '&', '#',
# '=') is percent-encoded, so a value can't end a parameter early or turn into a space.
_QUERY_SAFE = "$'(),/:@*"

Sleeper = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class RequestObserver(Protocol):
    """Told about every exchange with Graph (metrics). Must be quick and must not raise."""

    def graph_response(self, *, method: str, bucket: str, status: int, seconds: float) -> None: ...

    def graph_transport_error(self, *, method: str, bucket: str, seconds: float) -> None: ...

    def graph_batch_items_throttled(self, *, bucket: str, items: int) -> None: ...


_default_observer: RequestObserver | None = None


def set_request_observer(observer: RequestObserver | None) -> None:
    """The observer of requesters built without one: metrics are per process, like this hook.

    The graph layer knows nothing of what observes it; the app wires its metrics in here.
    """
    global _default_observer
    _default_observer = observer


class Bucket(StrEnum):
    """Graph throttles per resource bucket; a 429 in one doesn't hold back the other."""

    identity = "identity"
    reports = "reports"


def encode_query(params: Mapping[str, str]) -> str:
    """``$filter=roleDefinitionId eq 'x'`` → ``$filter=roleDefinitionId%20eq%20'x'``."""
    return "&".join(
        f"{quote(name, safe='$')}={quote(value, safe=_QUERY_SAFE)}"
        for name, value in params.items()
    )


def odata_quote(value: str) -> str:
    """An OData string literal: single quotes, embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def path_segment(value: str) -> str:
    """A value placed in a URL path (ids, UPNs such as ``a#EXT#@b``), percent-encoded."""
    return quote(value, safe="@")


def odata_filter(**conditions: str | None) -> str | None:
    """``a eq 'x' and b eq 'y'`` for the conditions that are set (values quoted and escaped)."""
    parts = [f"{name} eq {odata_quote(value)}" for name, value in conditions.items() if value]
    return " and ".join(parts) or None


def query_params(
    odata_filter_text: str | None = None, *, expand: str | None = None, top: int | None = None
) -> dict[str, str] | None:
    """``$filter``/``$expand``/``$top`` parameters for the options that are set (``None`` if
    none)."""
    params: dict[str, str] = {}
    if odata_filter_text:
        params["$filter"] = odata_filter_text
    if expand:
        params["$expand"] = expand
    if top:
        params["$top"] = str(top)
    return params or None


def odata_datetime(value: datetime) -> str:
    """An OData date-time literal in UTC (``2025-01-06T09:00:00Z``); naive values are refused."""
    if value.tzinfo is None:
        raise ValueError("give an aware datetime (UTC) for Graph filters")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphRequester:
    """Sends requests to one tenant's Graph endpoint: retries, pacing, a concurrency bound."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        transport: httpx.AsyncBaseTransport | None,
        settings: GraphSettings,
        limits: GraphLimits,
        sleeper: Sleeper = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._observer = observer
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc.lower())
        self._settings = settings
        self._sleeper = sleeper
        self._clock = clock
        concurrency = min(settings.max_concurrency, limits.max_concurrency)
        self._timeout = settings.request_timeout_seconds
        self._http = httpx.AsyncClient(
            auth=auth,
            transport=transport,
            timeout=httpx.Timeout(
                settings.request_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            base=settings.backoff_base_seconds,
            cap=settings.backoff_max_seconds,
            total_deadline=settings.total_deadline_seconds,
            rng=rng or random.Random(),
        )
        self.write_pacer = write_pacer_for(limits, clock=clock, sleeper=sleeper)
        self.reports_pacer = reports_pacer_for(limits, clock=clock, sleeper=sleeper)
        self.gates = {
            bucket: Pacer(float("inf"), 1, clock=clock, sleeper=sleeper) for bucket in Bucket
        }
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def sleeper(self) -> Sleeper:
        return self._sleeper

    @property
    def clock(self) -> Clock:
        return self._clock

    async def aclose(self) -> None:
        """Stop taking requests, let in-flight exchanges finish (bounded), close connections."""
        self._closed = True
        try:
            async with asyncio.timeout(self._timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("graph.client.closed_with_requests_in_flight", in_flight=self._in_flight)
        await self._http.aclose()

    def url_for(self, path_or_url: str, params: Mapping[str, str] | None = None) -> str:
        """Absolute URL for a path under the base URL; absolute URLs (``nextLink``) stay verbatim
        but must point at the tenant's own Graph host, which is where the token may go."""
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise GraphUnexpectedResponseError(
                    f"refusing to follow a link to {parts.scheme}://{parts.netloc}: "
                    f"it is not this tenant's Graph endpoint"
                )
            if params:
                raise ValueError("query parameters can't be added to an absolute link")
            return path_or_url
        url = self.base_url + "/" + path_or_url.lstrip("/")
        return f"{url}?{encode_query(params)}" if params else url

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: JsonValue = None,
        idempotent: bool | None = None,
        write_cost: int | None = None,
        bucket: Bucket = Bucket.identity,
    ) -> GraphResponse:
        """One logical call, retried as the policy allows; 2xx or a typed :class:`GraphError`.

        ``idempotent`` defaults to true for GET/HEAD/DELETE (a read-only POST passes ``True``);
        ``write_cost`` is what the call takes from the write pacer (default 1 for non-reads).
        """
        method = method.upper()
        url = self.url_for(path_or_url, params)
        call = CallInfo(
            method=method,
            path=urlsplit(url).path,
            client_request_id=str(uuid.uuid4()),
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
        )
        cost = (0 if method in READ_METHODS else 1) if write_cost is None else write_cost
        content = None if json_body is None else json.dumps(json_body).encode()
        headers = {"client-request-id": call.client_request_id, "return-client-request-id": "true"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        gate = self.gates[bucket]

        async def attempt() -> AttemptResult:
            return await self._attempt(call, url, content, headers, cost, bucket)

        return await send_with_retries(
            attempt,
            call=call,
            policy=self.policy,
            sleeper=self._sleeper,
            clock=self._clock,
            on_throttled=gate.hold,
        )

    async def _attempt(
        self,
        call: CallInfo,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str],
        write_cost: int,
        bucket: Bucket,
    ) -> AttemptResult:
        if self._closed:
            raise GraphTransportError(
                "the Graph client is closed", method=call.method, path=call.path
            )
        await self.gates[bucket].acquire()
        if bucket is Bucket.reports:
            await self.reports_pacer.acquire()
        if write_cost:
            await self.write_pacer.acquire(write_cost)
        async with self._semaphore:
            self._in_flight += 1
            self._idle.clear()
            try:
                return await self._exchange(call, url, content, headers, bucket)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    async def _exchange(
        self,
        call: CallInfo,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str],
        bucket: Bucket,
    ) -> AttemptResult:
        started = self._clock()
        request = self._http.build_request(call.method, url, content=content, headers=headers)
        try:
            # httpx.ASGITransport ignores timeouts: this makes an in-process hang behave like a
            # network read timeout.
            async with asyncio.timeout(self._timeout):
                response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._observe_failure(call, bucket, started)
            return self._transport_failure(call, OutcomeKind.not_sent, exc)
        except (
            TimeoutError,
            httpx.TimeoutException,
            httpx.NetworkError,
            httpx.ProtocolError,
        ) as exc:
            self._observe_failure(call, bucket, started)
            return self._transport_failure(call, OutcomeKind.lost, exc)
        except httpx.HTTPError as exc:
            self._observe_failure(call, bucket, started)
            raise GraphTransportError(
                f"request could not be made: {type(exc).__name__}",
                method=call.method,
                path=call.path,
                client_request_id=call.client_request_id,
            ) from exc
        status = response.status_code
        request_id = response.headers.get("request-id")
        self._observe_load(response.headers, bucket)
        elapsed = self._clock() - started
        observer = self._observer or _default_observer
        if observer is not None:
            observer.graph_response(
                method=call.method, bucket=bucket.value, status=status, seconds=elapsed
            )
        log.debug(
            "graph.request",
            method=call.method,
            path=call.path,
            status=status,
            elapsed_ms=round(elapsed * 1000, 1),
            request_id=request_id,
            client_request_id=call.client_request_id,
        )
        if 200 <= status < 300:
            return AttemptResult(
                outcome=Outcome(OutcomeKind.response, call.idempotent, status=status),
                response=GraphResponse(
                    status=status,
                    headers=response.headers,
                    content=response.content,
                    request_id=request_id,
                    client_request_id=call.client_request_id,
                ),
            )
        error = GraphError.from_response(
            status,
            response.headers,
            response.content,
            method=call.method,
            path=call.path,
            client_request_id=call.client_request_id,
        )
        return AttemptResult(
            outcome=Outcome(
                OutcomeKind.response,
                call.idempotent,
                status=status,
                retry_after=error.retry_after,
                graph_error_body=error.has_graph_error_body,
            ),
            error=error,
        )

    def observe_throttled_items(self, bucket: Bucket, items: int) -> None:
        """Items inside one ``$batch`` answer that Graph throttled (status 429)."""
        observer = self._observer or _default_observer
        if observer is not None and items:
            observer.graph_batch_items_throttled(bucket=bucket.value, items=items)

    def _observe_failure(self, call: CallInfo, bucket: Bucket, started: float) -> None:
        observer = self._observer or _default_observer
        if observer is not None:
            observer.graph_transport_error(
                method=call.method, bucket=bucket.value, seconds=self._clock() - started
            )

    def _transport_failure(
        self, call: CallInfo, kind: OutcomeKind, exc: BaseException
    ) -> AttemptResult:
        what = "not sent" if kind is OutcomeKind.not_sent else "sent, no answer"
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return AttemptResult(
            outcome=Outcome(kind, call.idempotent),
            error=GraphTransportError(
                f"{what}: {reason}",
                method=call.method,
                path=call.path,
                client_request_id=call.client_request_id,
            ),
        )

    def _observe_load(self, headers: httpx.Headers, bucket: Bucket) -> None:
        raw = headers.get("x-ms-throttle-limit-percentage")
        if raw is None:
            return
        try:
            percentage = float(raw)
        except ValueError:
            return
        pacer = self.reports_pacer if bucket is Bucket.reports else self.write_pacer
        pacer.observe_limit_percentage(percentage)

    async def iter_values(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        bucket: Bucket = Bucket.identity,
    ) -> AsyncIterator[JsonObject]:
        """Items of a collection, page by page, following ``@odata.nextLink`` verbatim."""
        url: str = path
        query = params
        previous: str | None = None
        while True:
            page = json_object(await self.request("GET", url, params=query, bucket=bucket))
            values = page.get("value")
            if not isinstance(values, list):
                raise GraphUnexpectedResponseError(
                    "collection page without a 'value' list", method="GET", path=path
                )
            for item in values:
                if isinstance(item, dict):
                    yield item
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return
            if next_link == previous:
                raise GraphUnexpectedResponseError(
                    "@odata.nextLink points at the page just read", method="GET", path=path
                )
            previous = url = next_link
            query = None


def json_object(response: GraphResponse) -> JsonObject:
    """The body of a 2xx answer as a JSON object."""
    try:
        parsed = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise GraphUnexpectedResponseError(
            f"expected a JSON object in the {response.status} answer",
            status=response.status,
            request_id=response.request_id,
            client_request_id=response.client_request_id,
        )
    return parsed
