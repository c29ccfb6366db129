"""The API's own description (``/openapi.json``, ``/docs``, ``/redoc``), and routes made ready.

FastAPI builds a route's dependencies and validation models at its first match, and the OpenAPI
description at its first request, both on the event loop: pydantic schema generation that takes
hundreds of milliseconds for this app and stalls every request in flight. So
:func:`prepare_routes` builds the former when the app is built, and :func:`serve_description`
serves the description from a sync route, which FastAPI runs in a worker thread.
"""

from __future__ import annotations

import fastapi.routing
from fastapi import FastAPI
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


def serve_description(app: FastAPI) -> None:
    """Add ``/openapi.json`` and its two readers to ``app``, built with ``openapi_url=None``."""

    @app.get(OPENAPI_URL, include_in_schema=False)
    def openapi_json() -> JSONResponse:
        # Sync on purpose: the first call generates the description, off the loop.
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{app.title} - ReDoc")
