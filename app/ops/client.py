"""The API over HTTP: one httpx client, problems turned into :class:`OpsError`.

The token travels in the ``Authorization`` header only; no message this module makes
contains it (they name the server, the method and path, and the server's problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from app.ops.errors import ExitCode, OpsError, exit_code_for

DEFAULT_SERVER = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_S = 30.0
USER_AGENT = "pim-rollout-cli"


class OpsClient:
    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.server = server.rstrip("/")
        self.has_token = bool(token)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def __enter__(self) -> OpsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send; a 2xx answer is returned, anything else raises :class:`OpsError`."""
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        try:
            response = self._http.request(
                method, path, json=json, params=params, headers=headers, **extra
            )
        except httpx.TimeoutException:
            raise OpsError(
                f"{self.server} did not answer {method} {path} in time", ExitCode.unreachable
            ) from None
        except httpx.TransportError as exc:
            raise OpsError(
                f"cannot reach {self.server}: {_reason(exc)}", ExitCode.unreachable
            ) from None
        if response.status_code >= 400:
            raise self.problem_error(method, path, response)
        return response

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return json_of(self.request("GET", path, params=params))

    def problem_error(self, method: str, path: str, response: httpx.Response) -> OpsError:
        problem = problem_of(response)
        status = response.status_code
        message = f"{method} {path}: {describe_problem(problem, status)}"
        if status == 401:
            message += (
                "\nno token was given: set --token or PIM_ROLLOUT_TOKEN"
                if not self.has_token
                else "\nthe server does not accept this token (--token / PIM_ROLLOUT_TOKEN)"
            )
        return OpsError(message, exit_code_for(status), status=status, problem=problem)


def api_path(*parts: str) -> str:
    """``/api/v1/`` and the parts, each quoted: an id typed with a ``/`` or ``?`` in it stays
    one path segment instead of reaching another route."""
    return "/api/v1/" + "/".join(quote(part, safe="") for part in parts)


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise OpsError(
            f"the server answered {response.request.method} {response.request.url.path} "
            f"with something that is not JSON ({response.headers.get('content-type', '?')})",
            ExitCode.unreachable,
        ) from None


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The RFC 9457 problem of an error answer; a made-up one when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    text = " ".join(response.text.split())[:200]
    return {"status": response.status_code, "title": response.reason_phrase, "detail": text}


def describe_problem(problem: Mapping[str, Any], status: int | None = None) -> str:
    """``409 That action does not apply now: … (state: running; allowed: pause, abort)``."""
    status = int(problem.get("status") or status or 0)
    title = str(problem.get("title") or "").strip()
    detail = str(problem.get("detail") or "").strip()
    head = f"{status} {title}".strip() if status else title
    text = f"{head}: {detail}" if detail and detail != title else head
    if "current_state" in problem:
        allowed = ", ".join(problem.get("allowed_events") or []) or "none"
        text += f" (state: {problem['current_state']}; allowed: {allowed})"
    for error in problem.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        line = f"{error.get('path', '?')}: {error.get('message', '')}"
        if line not in detail:
            text += f"\n  {line}"
    return text


def _reason(exc: httpx.TransportError) -> str:
    reason = str(exc).strip()
    return reason or type(exc).__name__
