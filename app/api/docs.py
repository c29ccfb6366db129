"""The API's own description (``/openapi.json``, ``/docs``, ``/redoc``), and routes made ready.

FastAPI builds a route's dependencies and validation models at its first match, and the OpenAPI
description at its first request, both on the event loop: pydantic schema generation that takes
hundreds of milliseconds for this app and stalls every request in flight. So
:func:`prepare_routes` builds the former when the app is built, and :func:`serve_description`
serves the description from a sync route, which FastAPI runs in a worker thread.
"""

from __future__ import annotations

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount

# Recent FastAPI includes routers lazily and builds a route's state at its first match; older
# releases built it when a router was included, and have nothing to walk.
_iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)

OPENAPI_URL = "/openapi.json"


def prepare_routes(app: FastAPI) -> None:
    """Build every route's dependencies and validation models now, before any loop runs: for
    ``app`` and each FastAPI app mounted in it (the UI)."""
    if _iter_route_contexts is None:  # pragma: no cover
        return
    apps = [app] + [
        r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, FastAPI)
    ]
    for each in apps:
        for _ in _iter_route_contexts(each.routes):
            pass


def _app(request: Request) -> FastAPI:
    app = request.app
    assert isinstance(app, FastAPI)
    return app


# Module-level handlers that find the app in the request: FastAPI keeps the callables it has
# classified in a process-wide cache, so a handler closing over its app would keep every app
# built in the process alive (a test process builds hundreds).


def _openapi_json(request: Request) -> JSONResponse:
    # Sync on purpose: the first call generates the description, off the loop.
    return JSONResponse(_app(request).openapi())


async def _swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{_app(request).title} - Swagger UI")


async def _redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{_app(request).title} - ReDoc")


def serve_description(app: FastAPI) -> None:
    """Add ``/openapi.json`` and its two readers to ``app``, built with ``openapi_url=None``."""
    app.add_api_route(OPENAPI_URL, _openapi_json, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", _swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", _redoc, methods=["GET"], include_in_schema=False)
