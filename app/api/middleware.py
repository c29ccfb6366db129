"""Request ids and access logs: every request is logged once, with its id, as structured data.

The id comes from the caller's ``X-Request-ID`` when it looks like one (so a trace can cross
services), or is made up here; it is bound to the structlog context for everything logged while
the request runs and returned in the ``X-Request-ID`` response header. Paths are logged and
counted by route template (``/api/v1/plans/{plan_id}``), never with query strings.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.logging import get_logger
from app.problems import PROBLEM_JSON, TYPE_BASE

log = get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
QUIET_ROUTES = frozenset({"/healthz", "/metrics"})
"""Scraped every few seconds: logged at debug level only."""


def request_id_from(headers: Headers) -> str:
    incoming = headers.get(REQUEST_ID_HEADER, "")
    return incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template; ``unmatched`` keeps metric labels bounded."""
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path if isinstance(path, str) and path else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            error: str | None = None
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                error = type(exc).__name__
                raise
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                method = str(scope.get("method", ""))
                metrics.record_http(method, route, status, elapsed)
                emit = log.debug if route in QUIET_ROUTES and error is None else log.info
                emit(
                    "http.request",
                    method=method,
                    route=route,
                    path=str(scope.get("path", "")),
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                    error=error,
                )


_NUL_ESCAPE = re.compile(rb"(\\+)u0000", re.IGNORECASE)
_JSON_TYPES = ("application/json", "+json")
_FORM_TYPE = "application/x-www-form-urlencoded"


class RefuseNulCharacters:
    """A request with a NUL character (U+0000) in its path, query or body is refused (400).

    No field of this service may hold one, and PostgreSQL cannot store one in text: the driver
    raises, which would be a 500. Checked once here for every route rather than on every
    string field. JSON bodies are checked for the ``\\u0000`` escape (an escaped backslash
    followed by ``u0000`` is text, not a NUL), forms for ``%00``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_target(scope)
        kind = _body_kind(Headers(scope=scope).get("content-type", ""))
        if where is None and kind is not None:
            body = await _read_body(receive)
            if _nul_in_body(kind, body):
                where = "body"
            receive = _replay(body, receive)
        if where is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {
                "type": TYPE_BASE + "bad-request",
                "title": "Bad request",
                "status": 400,
                "detail": f"the request's {where} holds a NUL character (U+0000), which no "
                "value here may contain",
                "instance": str(scope.get("path", "")),
            },
            status_code=400,
            media_type=PROBLEM_JSON,
        )
        await response(scope, receive, send)


def _nul_in_target(scope: Scope) -> str | None:
    if "\x00" in str(scope.get("path", "")):
        return "path"
    query = bytes(scope.get("query_string", b"")).lower()
    if b"%00" in query or b"\x00" in query:
        return "query"
    return None


def _body_kind(content_type: str) -> str | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith(_JSON_TYPES[0]) or media.endswith(_JSON_TYPES[1]):
        return "json"
    if media == _FORM_TYPE:
        return "form"
    return None


def _nul_in_body(kind: str, body: bytes) -> bool:
    if b"\x00" in body:
        return True
    if kind == "form":
        return b"%00" in body
    # An odd run of backslashes before "u0000" ends with the escape itself.
    return any(len(match.group(1)) % 2 == 1 for match in _NUL_ESCAPE.finditer(body))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, as one message; then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
