"""``create_simulator_app``: the simulated Entra tenant as an ASGI app.

``/v1.0/...`` behaves like Microsoft Graph v1.0 for the PIM subset; ``/_sim/...`` is the control
API. The same app runs in-process (``httpx.ASGITransport``), standalone under uvicorn, and under
Microsoft's SDK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.simulator import control, errors
from app.simulator.clock import Clock, SystemClock
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.faults import SimLimits
from app.simulator.routes import (
    access_reviews,
    audit_logs,
    batch,
    directory,
    mail,
    policies,
    role_management,
    schedule_requests,
)
from app.simulator.state import SimState

logger = logging.getLogger(__name__)

# What Graph sends for JSON bodies (batch sample, item headers).
JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def build_router() -> Router:
    router = Router()
    for module in (
        role_management,
        schedule_requests,
        policies,
        access_reviews,
        directory,
        mail,
        audit_logs,
        batch,
    ):
        module.register(router)
    return router


async def _graph_request(request: Request) -> GraphRequest:
    raw = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    body: object = None
    body_error = None
    if raw:
        if headers.get("content-type", "").lower().startswith("text/plain"):
            body = raw.decode("utf-8", errors="replace")
        else:
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                body_error = str(exc)
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        # The docs even show "$filter = principalId eq '…'" with spaces around '='.
        key = key.strip()
        params[key.lower() if key.startswith("$") else key] = value.strip()
    base = str(request.base_url).rstrip("/") + "/v1.0"
    return GraphRequest(
        method=request.method.upper(),
        path=request.path_params.get("path", "").strip("/"),
        params=params,
        headers=headers,
        body=body,
        body_error=body_error,
        base_url=base,
        request_id=str(uuid.uuid4()),
    )


def _to_response(response: GraphResponse) -> Response:
    if response.body is None:
        return Response(status_code=response.status, headers=response.headers)
    content = json.dumps(response.body, separators=(",", ":")).encode()
    return Response(
        content=content,
        status_code=response.status,
        headers=response.headers,
        media_type=JSON_CONTENT_TYPE,
    )


def create_simulator_app(
    state: SimState, *, limits: SimLimits | None = None, clock: Clock | None = None
) -> Starlette:
    ctx = SimContext(state, limits or SimLimits(), clock or SystemClock(), build_router())

    async def graph(request: Request) -> Response:
        graph_request = await _graph_request(request)
        if ctx.limits.latency_ms:
            await asyncio.sleep(ctx.limits.latency_ms / 1000)
        try:
            outcome = ctx.process(graph_request)
        except Exception:  # a bug in a handler must still answer like Graph, with a 500
            logger.exception("simulator.handler.crashed", extra={"path": graph_request.path})
            outcome_response = ctx.error_response(
                graph_request,
                errors.GraphError(500, errors.GENERAL_EXCEPTION, "An internal error occurred."),
            )
            outcome_response.headers["request-id"] = graph_request.request_id
            return _to_response(outcome_response)
        ctx.request_log.append(
            (graph_request.method, str(request.url), outcome.response.status, time.time())
        )
        if outcome.lost:
            # The change is committed; the answer is withheld until the caller gave up.
            await asyncio.sleep(ctx.limits.lost_response_hang_seconds)
        return _to_response(outcome.response)

    app = Starlette(
        routes=[
            Route("/v1.0/{path:path}", graph, methods=METHODS),
            *control.routes(ctx),
        ]
    )
    app.state.sim = ctx
    return app
