"""The admin UI: a sub-application mounted at ``/ui`` with its own session and error pages.

Mounting keeps the cookie, the CSRF checks and the HTML error pages away from ``/api``, which
keeps answering problem+json to bearer tokens.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.context import AppContext
from app.ui import auth, monitoring, posture
from app.ui.errors import install_error_pages
from app.ui.routes import auth as auth_routes
from app.ui.routes import plan_pages, plans, tenants

# Everything is served from here: no CDN, no inline script, no external font.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Default security headers; a response that sets its own CSP (the comms frame) keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                headers.extend(h for h in _HEADERS if h[0] not in names)
                html = any(
                    name.lower() == b"content-type" and value.startswith(b"text/html")
                    for name, value in headers
                )
                if html and b"cache-control" not in names:
                    # Pages show live tenant state and a CSRF token: never from a cache.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_ui_app(ctx: AppContext) -> FastAPI:
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_pages(ui)
    for router in (
        auth_routes.router,
        plans.router,
        plan_pages.router,
        tenants.router,
        monitoring.router,
        posture.router,
    ):
        ui.include_router(router)
    ui.mount("/static", StaticFiles(packages=[("app.ui", "static")]), name="static")
    ui.add_middleware(SecurityHeaders)
    bind_ui_context(ui, ctx)
    return ui


def bind_ui_context(ui: FastAPI, ctx: AppContext) -> None:
    """Serve the UI with ``ctx``: its state, and a session cookie signed with ``ctx``'s key.

    Only before the UI serves (the middleware stack is built again at the next request).
    """
    ui.state.ctx = ctx
    session = Middleware(
        SessionMiddleware,
        secret_key=auth.session_secret(ctx.secret_box),
        session_cookie=auth.COOKIE_NAME,
        max_age=auth.SESSION_MAX_AGE_SECONDS,
        path="/ui",
        same_site="strict",
        https_only=auth.cookie_is_secure(ctx.settings),
    )
    # The session is the outermost middleware, as add_middleware would have put it.
    others = [m for m in ui.user_middleware if m.cls is not SessionMiddleware]  # type: ignore[comparison-overlap]
    ui.user_middleware = [session, *others]
    ui.middleware_stack = None


def mount_ui(app: FastAPI, ctx: AppContext) -> FastAPI:
    """Serve the admin UI (pages and ``/ui/static``) from ``app``; returns the UI's app."""
    ui = create_ui_app(ctx)
    # The job runner lives on the host app (``app.state.jobs``); a mounted app's requests see
    # only the UI app, so it keeps a way back to its host.
    ui.state.host = app
    # Unnamed, so ``url_for("plan", ...)`` finds the UI's routes by their own names.
    app.mount("/ui", ui)
    return ui
