"""Errors as pages: the UI answers HTML where the API answers problem+json."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from app.logging import get_logger
from app.problems import AppError
from app.ui.templating import render

log = get_logger(__name__)


class LoginRequiredError(Exception):
    """No valid session: go to the sign-in page and come back afterwards."""

    def __init__(self, request: Request) -> None:
        super().__init__("sign in first")
        path = request.url.path
        if request.method == "GET" and not request.headers.get("hx-request"):
            self.next: str | None = path + (f"?{request.url.query}" if request.url.query else "")
        else:
            self.next = None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_page(
    request: Request, status: int, detail: str, *, title: str | None = None, kind: str = ""
) -> Response:
    template = {403: "errors/403.html", 404: "errors/404.html"}.get(status, "errors/error.html")
    return render(
        request,
        template,
        {"status": status, "title": title or _reason(status), "detail": detail, "kind": kind},
        status_code=status,
    )


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequiredError)
    async def _login(request: Request, exc: LoginRequiredError) -> Response:
        if exc.next and request.headers.get("sec-fetch-site") == "cross-site":
            # A link followed from mail or chat: the browser withheld the SameSite=Strict
            # cookie. Sending it to the sign-in page would replace a live session with an
            # empty one; a same-site hop to the same address brings the cookie along.
            return render(request, "auth/continue.html", {"target": exc.next}, touch_session=False)
        target = str(request.url_for("login").path)
        if exc.next:
            target += "?" + urlencode({"next": exc.next})
        if request.headers.get("hx-request"):
            # htmx would swap the sign-in page into a fragment; ask it to navigate instead.
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return error_page(
            request,
            exc.status_code,
            exc.detail,
            title=exc.title,
            kind=str(exc.extra.get("reason", "")),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_page(request, 400, f"The request was not understood: {detail}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = (
            "There is no page at this address."
            if exc.status_code == 404
            else str(exc.detail or _reason(exc.status_code))
        )
        return error_page(request, exc.status_code, detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error(
            "ui.unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc
        )
        return error_page(
            request, 500, "Something went wrong on our side; it has been logged.", title="Error"
        )
