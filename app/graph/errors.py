"""Typed errors for everything that can go wrong talking to Microsoft Graph.

Callers never see an ``httpx.Response``: a non-2xx answer becomes a :class:`GraphError` subclass
chosen from the HTTP status and Graph's ``error.code`` (reference §2.1, §5.5). Program against
``code``/``inner_code``, never against ``message`` (Graph's own guidance).

Nothing here ever carries a token or a secret: errors are built from Graph's response body,
response headers we name explicitly (``request-id``, ``client-request-id``, ``Retry-After``),
the HTTP method and the request path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from pydantic import JsonValue

POLICY_VALIDATION_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
ROLE_ASSIGNMENT_EXISTS = "RoleAssignmentExists"
ROLE_ASSIGNMENT_DOES_NOT_EXIST = "RoleAssignmentDoesNotExist"

_RULE_LIST = re.compile(r"\[(?P<body>[^\]]*)\]")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'")


class GraphError(Exception):
    """Root of every Graph failure.

    ``status`` is ``None`` when no HTTP answer was received (transport errors, unknown outcomes).
    ``retry_after`` is in seconds, parsed from the ``Retry-After`` header when Graph sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
        inner_code: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.inner_code = inner_code
        self.retry_after = retry_after
        self.method = method
        self.path = path

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.code) if part not in (None, ""))
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        ids = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("request-id", self.request_id),
                ("client-request-id", self.client_request_id),
            )
            if value
        )
        text = f"{where}{head + ': ' if head else ''}{self.message}"
        return f"{text} ({ids})" if ids else text

    @property
    def has_graph_error_body(self) -> bool:
        """Whether the answer carried Graph's ``{"error": {...}}`` envelope (Graph answered)."""
        return self.code is not None

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Mapping[str, str],
        body: bytes | str | Mapping[str, JsonValue] | None,
        *,
        method: str | None = None,
        path: str | None = None,
        client_request_id: str | None = None,
        now: datetime | None = None,
    ) -> GraphError:
        """Build the typed error for one non-2xx answer (a whole response or one ``$batch`` item).

        Reads ``innerError["request-id"]`` and the older ``innerError.requestId`` spelling, falls
        back to the ``request-id`` response header, and tolerates bodies that are not JSON (a
        proxy's HTML page, an empty 503).
        """
        envelope = _error_envelope(body)
        lowered = {key.lower(): value for key, value in headers.items()}
        code: str | None = None
        message = f"HTTP {status}"
        inner_code: str | None = None
        request_id = lowered.get("request-id")
        echoed_client_request_id = lowered.get("client-request-id")
        if envelope is not None:
            code = _as_str(envelope.get("code"))
            message = _as_str(envelope.get("message")) or message
            inner = envelope.get("innerError") or envelope.get("innererror")
            if isinstance(inner, dict):
                inner_code = _as_str(inner.get("code"))
                request_id = (
                    _as_str(inner.get("request-id"))
                    or _as_str(inner.get("requestId"))
                    or request_id
                )
                echoed_client_request_id = (
                    _as_str(inner.get("client-request-id"))
                    or _as_str(inner.get("clientRequestId"))
                    or echoed_client_request_id
                )
            if code is None:
                # Graph answered with an envelope but an empty code (seen in batch samples).
                code = ""
        elif body:
            message = f"HTTP {status} with a non-Graph body"
        retry_after_header = lowered.get("retry-after")
        retry_after = (
            parse_retry_after(retry_after_header, now=now or datetime.now(UTC))
            if retry_after_header is not None
            else None
        )
        return _class_for(status, code)(
            message,
            status=status,
            code=code,
            request_id=request_id,
            client_request_id=echoed_client_request_id or client_request_id,
            inner_code=inner_code,
            retry_after=retry_after,
            method=method,
            path=path,
        )


class GraphBadRequestError(GraphError):
    """400: Graph refused the request as invalid."""


class GraphPolicyValidationError(GraphBadRequestError):
    """400 ``RoleAssignmentRequestPolicyValidationFailed``: the role's PIM policy said no.

    ``failed_rules`` lists the rule names from the message, e.g. ``["MfaRule"]`` or
    ``["ExpirationRule"]`` (reference §5.5).
    """

    @property
    def failed_rules(self) -> list[str]:
        return parse_failed_rules(self.message)


class GraphAlreadyExistsError(GraphBadRequestError):
    """400 ``RoleAssignmentExists``: count as success only after reading the schedule back."""


class GraphDoesNotExistError(GraphBadRequestError):
    """400 ``RoleAssignmentDoesNotExist``: also seen for a retried remove that already succeeded."""


class GraphAuthError(GraphError):
    """401, or no token could be acquired for the tenant."""


class GraphCredentialError(GraphAuthError):
    """The tenant's credential cannot get a Graph token: its configuration needs fixing.

    Raised when the credential cannot be built, when azure-identity refuses to issue a token
    (``ClientAuthenticationError``, ``CredentialUnavailableError``, a ``ValueError``), or when a
    token would go anywhere but the tenant's Microsoft Graph. ``reason`` and ``fix`` are safe to
    show: they never carry a secret or a token. Retrying does not help; fixing the tenant's
    ``auth`` (or ``graph_base_url``, or where the service runs) does.
    """

    def __init__(self, *, credential_kind: str, cloud: str | None, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; {fix}")
        self.credential_kind = credential_kind
        self.cloud = cloud
        self.reason = reason
        self.fix = fix

    def copy(self) -> GraphCredentialError:
        """The same refusal, raised afresh (a remembered one is re-raised as a copy)."""
        return GraphCredentialError(
            credential_kind=self.credential_kind, cloud=self.cloud, reason=self.reason, fix=self.fix
        )


class GraphForbiddenError(GraphError):
    """403: the app lacks a permission (``Authorization_RequestDenied``) or a licence."""


class GraphNotFoundError(GraphError):
    """404: the object does not exist (for deletes: it is already gone)."""


class GraphConflictError(GraphError):
    """409: the change conflicts with the object's current state."""


class GraphThrottledError(GraphError):
    """429: Graph throttled the request; ``retry_after`` says for how long."""


class GraphServerError(GraphError):
    """5xx. On a write (other than a retried 503/504 with a Graph body) verify before re-sending."""


class GraphTransportError(GraphError):
    """No usable HTTP answer: connection refused, timeout, malformed response, closed client."""


class GraphUnexpectedResponseError(GraphError):
    """Graph answered 2xx with something that is not what it documents (not JSON, wrong shape),
    or a ``@odata.nextLink`` pointing at another host (never followed: it would carry our token).
    """


class GraphOutcomeUnknownError(GraphError):
    """A write was sent but its answer was lost, so it may or may not have been applied.

    The client never re-sends such a write: the caller must read the target state (schedules,
    rules, definitions) to learn what happened before trying again.
    """

    def __init__(self, *, method: str, path: str, client_request_id: str, reason: str) -> None:
        super().__init__(
            f"outcome unknown: {reason}; read the target state before retrying",
            method=method,
            path=path,
            client_request_id=client_request_id,
        )
        self.reason = reason


class GraphRetryExhaustedError(GraphError):
    """Retries stopped (attempt cap or total deadline) while Graph kept failing transiently.

    ``last_error`` is the error of the final attempt; ``status``/``code`` are copied from it.
    """

    reason: Literal["attempts", "deadline"] = "attempts"

    def __init__(self, last_error: GraphError, *, attempts: int) -> None:
        super().__init__(
            f"gave up after {attempts} attempt(s) ({self.reason}): {last_error.message}",
            status=last_error.status,
            code=last_error.code,
            request_id=last_error.request_id,
            client_request_id=last_error.client_request_id,
            inner_code=last_error.inner_code,
            retry_after=last_error.retry_after,
            method=last_error.method,
            path=last_error.path,
        )
        self.last_error = last_error
        self.attempts = attempts


class GraphDeadlineExceededError(GraphRetryExhaustedError):
    """The next retry would have slept past the call's total deadline."""

    reason: Literal["attempts", "deadline"] = "deadline"


def _class_for(status: int, code: str | None) -> type[GraphError]:
    folded = (code or "").lower()
    if status == 400:
        if folded == POLICY_VALIDATION_FAILED.lower():
            return GraphPolicyValidationError
        if folded == ROLE_ASSIGNMENT_EXISTS.lower():
            return GraphAlreadyExistsError
        if folded == ROLE_ASSIGNMENT_DOES_NOT_EXIST.lower():
            return GraphDoesNotExistError
        return GraphBadRequestError
    by_status: dict[int, type[GraphError]] = {
        401: GraphAuthError,
        403: GraphForbiddenError,
        404: GraphNotFoundError,
        409: GraphConflictError,
        429: GraphThrottledError,
    }
    if status in by_status:
        return by_status[status]
    if status >= 500:
        return GraphServerError
    return GraphError


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _error_envelope(
    body: bytes | str | Mapping[str, JsonValue] | None,
) -> Mapping[str, JsonValue] | None:
    """The ``error`` object of a Graph error body, or ``None`` if the body isn't one."""
    parsed: object
    if body is None or isinstance(body, Mapping):
        parsed = body
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(parsed, Mapping):
        return None
    envelope = parsed.get("error")
    return envelope if isinstance(envelope, dict) else None


def parse_failed_rules(message: str) -> list[str]:
    """Rule names from ``The following policy rules failed: ["MfaRule"]`` (order kept)."""
    match = _RULE_LIST.search(message)
    if match is None:
        return []
    body = "[" + match.group("body") + "]"
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return [item for item in parsed if item]
    return [double or single for double, single in _QUOTED.findall(match.group("body"))]


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: float seconds (``"2.128"``) or an HTTP-date.

    Returns ``None`` for a value that is neither; a date in the past means "now" (0.0).
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
