"""Which Graph failures are worth another attempt once the target state has been read back."""

from __future__ import annotations

from app.graph.errors import (
    GraphError,
    GraphOutcomeUnknownError,
    GraphRetryExhaustedError,
    GraphServerError,
    GraphThrottledError,
    GraphTransportError,
)

_TRANSIENT = (GraphServerError, GraphThrottledError, GraphTransportError, GraphOutcomeUnknownError)
ENGINE_ATTEMPTS = 5


def is_transient(error: BaseException | str | None) -> bool:
    """A 5xx, 429, lost answer or dropped connection: nothing says the request was wrong."""
    if isinstance(error, GraphRetryExhaustedError):
        return is_transient(error.last_error)
    return isinstance(error, _TRANSIENT)


def describe(error: GraphError) -> str:
    return f"{error.code or error.status or type(error).__name__}: {error.message}"
