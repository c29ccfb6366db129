"""One error root, rendered as RFC 9457 ``application/problem+json``.

Expected outcomes get their real 4xx; a 500 means a bug. Graph errors never reach HTTP here:
the engine turns them into item failures and journal outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain.validation import format_location
from app.logging import get_logger

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://pim-rollout.dev/problems/"
log = get_logger(__name__)


class AppError(Exception):
    status_code = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status_code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFoundError(AppError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class UnauthenticatedError(AppError):
    status_code = 401
    slug = "unauthenticated"
    title = "Authentication required"


class ForbiddenError(AppError):
    status_code = 403
    slug = "forbidden"
    title = "Not allowed for this role"


class ConflictError(AppError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class StaleVersionError(ConflictError):
    slug = "stale-version"
    title = "The plan changed since you read it"


class TransitionRefusedError(ConflictError):
    slug = "transition-refused"
    title = "That action does not apply now"


class PreflightFailedError(ConflictError):
    slug = "preflight-failed"
    title = "Preflight checks failed"


class InvalidInputError(AppError):
    """Input that parses but makes no sense; ``errors`` names each field path and reason."""

    status_code = 422
    slug = "invalid-input"
    title = "Invalid input"

    def __init__(self, detail: str, errors: Sequence[tuple[str, str]] = (), **extra: Any) -> None:
        super().__init__(
            detail, errors=[{"path": path, "message": message} for path, message in errors], **extra
        )


class BadRequestError(AppError):
    status_code = 400
    slug = "bad-request"
    title = "Bad request"


class TenantCredentialError(AppError):
    """The tenant's credential cannot get a Graph token: the tenant's configuration needs fixing.

    ``424 Failed Dependency``: the request was fine, but it depends on the tenant's credential,
    which failed. Not a 5xx (nothing is wrong with the service, and retrying does not help) and
    not a 409 (no state of a resource conflicts); the detail names the tenant, the credential
    kind and what to fix, and never a secret.
    """

    status_code = 424
    slug = "tenant-credential-failed"
    title = "The tenant's credential cannot get a Microsoft Graph token"


class UnavailableError(AppError):
    status_code = 503
    slug = "unavailable"
    title = "Temporarily unavailable"


class RecordedProblemError(AppError):
    """A failure recorded earlier (a background job's), answered exactly as it was recorded."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", "")))
        self.problem = problem
        self.status_code = int(problem.get("status", 500))

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body = dict(self.problem)
        if instance:
            body["instance"] = instance
        return body


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _request_validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    malformed_json = False
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            malformed_json = True
        source = loc[0] if loc else "body"
        path = format_location(loc[1:]) if len(loc) > 1 else str(source)
        if source != "body" and len(loc) > 1:
            path = f"{source}.{path}"
        message = (
            "unknown field" if error.get("type") == "extra_forbidden" else error.get("msg", "")
        )
        errors.append({"path": path, "message": message})
    if malformed_json:
        body = {
            "type": TYPE_BASE + "malformed-json",
            "title": "Malformed JSON",
            "status": 400,
            "detail": "the request body is not valid JSON: "
            + "; ".join(e["message"] for e in errors),
            "instance": request.url.path,
        }
        return problem_response(400, body)
    body = {
        "type": TYPE_BASE + "invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": "; ".join(f"{e['path']}: {e['message']}" for e in errors),
        "errors": errors,
        "instance": request.url.path,
    }
    return problem_response(422, body)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return problem_response(exc.status_code, exc.to_problem(request.url.path), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _request_validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail) if exc.status_code >= 500 else _reason(exc.status_code),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "http.unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc
        )
        body = {
            "type": TYPE_BASE + "internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error occurred; it has been logged",
            "instance": request.url.path,
        }
        return problem_response(500, body)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
