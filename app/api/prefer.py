"""RFC 7240 ``Prefer`` for long requests: ``respond-async`` and ``wait=N``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Header

from app.problems import BadRequestError

DEFAULT_WAIT_SECONDS = 2.0
"""Without a preference, a long request answers within this long: with the outcome if it is
ready, otherwise ``202`` and the job to poll."""
MAX_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class WaitPreference:
    seconds: float
    asked: str | None
    """The preference as the caller sent it, echoed in ``Preference-Applied``."""


def wait_preference(header: str | None) -> WaitPreference:
    """How long to wait for the outcome before answering ``202``.

    ``respond-async`` answers at once; ``wait=N`` waits up to N seconds (at most 600). Unknown
    preferences are ignored, as RFC 7240 asks; a malformed ``wait`` is a 400. Without a
    preference (``asked`` is None) the server's ``job_wait_seconds`` applies.
    """
    if not header:
        return WaitPreference(DEFAULT_WAIT_SECONDS, None)
    wait: WaitPreference | None = None
    for item in header.split(","):
        token = item.split(";", 1)[0].strip()
        name, _, value = token.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "respond-async":
            return WaitPreference(0.0, "respond-async")
        if name == "wait":
            if not (value.isascii() and value.isdigit()):  # not "²" or "٣", which isdigit()
                raise BadRequestError(
                    f"Prefer: wait={value!r} is not a whole number of seconds "
                    "(for example Prefer: wait=30)"
                )
            wait = WaitPreference(min(float(value), MAX_WAIT_SECONDS), f"wait={value}")
    return wait or WaitPreference(DEFAULT_WAIT_SECONDS, None)


PreferHeader = Annotated[
    str | None,
    Header(
        description="RFC 7240: `wait=N` waits up to N seconds for the outcome (at most 600; "
        "2 without it), `respond-async` answers 202 at once"
    ),
]
