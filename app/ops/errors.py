"""Exit codes scripts can rely on, and the one error the commands raise."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    ok = 0
    refused = 1
    """The server refused the request (a 4xx problem other than 401/403)."""
    usage = 2
    """The command line is wrong (typer's own usage errors exit 2 too)."""
    unreachable = 3
    """The server cannot be reached, timed out, or answered 5xx."""
    plan_failed = 4
    """``plans get --watch`` ended with the plan failed."""
    unauthorized = 5
    """No token, a token the server does not accept (401), or a role too low (403)."""


class OpsError(Exception):
    """What went wrong, said for a person, and the exit code it means."""

    def __init__(
        self,
        message: str,
        code: ExitCode,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        """The HTTP status of the server's answer, when there was one."""
        self.problem = dict(problem or {})
        """Its RFC 9457 problem (or what stood in for one)."""


def exit_code_for(status: int) -> ExitCode:
    """The exit code an HTTP error status (or a failed job's problem status) means."""
    if status in (401, 403):
        return ExitCode.unauthorized
    if status >= 500:
        return ExitCode.unreachable
    return ExitCode.refused
