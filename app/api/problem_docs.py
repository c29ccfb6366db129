"""The error answers of /api/v1 as OpenAPI describes them: RFC 9457 ``application/problem+json``.

Routes list the problems they can answer with ``responses=problems(404, 424, ...)``;
:func:`describe_problems` then files every 4xx/5xx body under ``application/problem+json`` and
replaces FastAPI's stock 422 (``HTTPValidationError``, which this API never sends) with the
invalid-input problem it does send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from app.problems import PROBLEM_JSON, TYPE_BASE


class Problem(BaseModel):
    """RFC 9457 problem details; some problems add members of their own."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no tenant with id 3f0c…"])
    instance: str | None = Field(default=None, examples=["/api/v1/tenants/3f0c…"])


class FieldProblem(BaseModel):
    path: str = Field(examples=["auth.client_secret"])
    message: str = Field(examples=["must not be empty: give the client secret's Value"])


class InvalidInputProblem(Problem):
    """422: each field path and what is wrong with it (never the value given)."""

    errors: list[FieldProblem]


class CredentialProblem(Problem):
    """424: the tenant's credential cannot get a Microsoft Graph token."""

    tenant_id: str
    credential_kind: str = Field(examples=["client_secret"])
    cloud: str | None = Field(examples=["global"])

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "tenant-credential-failed",
                    "title": "The tenant's credential cannot get a Microsoft Graph token",
                    "status": 424,
                    "detail": "tenant 'Contoso' (3f0c…): its client_secret credential cannot "
                    "get a Microsoft Graph token in the global cloud: Entra refused the client "
                    "secret (ClientAuthenticationError AADSTS7000215). To fix: give the "
                    "secret's Value (not its Secret ID) from the app registration's "
                    "Certificates & secrets: correct the tenant's auth block with PATCH "
                    "/api/v1/tenants/3f0c…; then check it with POST "
                    "/api/v1/tenants/3f0c…/check",
                    "tenant_id": "3f0c…",
                    "credential_kind": "client_secret",
                    "cloud": "global",
                }
            ]
        },
    )


_PROBLEMS: dict[int, tuple[type[Problem], str]] = {
    400: (
        Problem,
        "Malformed: a body that is not JSON, a NUL character anywhere in the request, or a "
        "`Prefer: wait=` that is not a number",
    ),
    401: (Problem, "No API token, or an unknown or revoked one"),
    403: (Problem, "The token's role is not enough"),
    404: (Problem, "Not found"),
    409: (
        Problem,
        "Conflicts with the current state (a duplicate name, an action that does not apply now, "
        "a stale `expected_version`, a failed preflight, a job of this kind already running)",
    ),
    422: (InvalidInputProblem, "Invalid input: each field path and the reason"),
    424: (
        CredentialProblem,
        "The tenant's credential cannot get a Microsoft Graph token (misconfigured, expired, "
        "unavailable where the service runs, or pointed at a host that is not Graph): the "
        "detail names the tenant, the credential kind and what to fix. Retrying does not help; "
        "fixing the tenant's `auth` does (`POST /api/v1/tenants/{id}/check` tries it).",
    ),
    503: (Problem, "Microsoft Graph failed or could not be reached: try again later"),
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these problem statuses."""
    return {
        status: {"model": _PROBLEMS[status][0], "description": _PROBLEMS[status][1]}
        for status in statuses
    }


AUTHENTICATED = problems(400, 401, 403, 422)
"""What every /api/v1 route may answer (422: a path, query or header value of the wrong shape;
400: a NUL character anywhere)."""


def describe_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe error bodies as they are sent (see the module doc)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    _problem_media_types(operation.get("responses", {}))
            schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_media_types(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        if not status.isdigit() or int(status) < 400:
            continue
        # FastAPI files a model under the route's own media type (JSON, or HTML for a page).
        bodies = list(response.get("content", {}).values())
        body = bodies[0] if bodies else None
        if status == "422":
            body = {"schema": {"$ref": "#/components/schemas/InvalidInputProblem"}}
            response["description"] = _PROBLEMS[422][1]
        if body is not None:
            response["content"] = {PROBLEM_JSON: body}
