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
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.logging import get_logger

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
