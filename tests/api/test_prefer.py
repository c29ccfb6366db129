"""RFC 7240 ``Prefer`` as the long requests read it."""

from __future__ import annotations

import pytest

from app.api.prefer import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, wait_preference
from app.problems import BadRequestError


class TestWaitPreference:
    @pytest.mark.parametrize(
        ("header", "seconds", "asked"),
        [
            (None, DEFAULT_WAIT_SECONDS, None),
            ("", DEFAULT_WAIT_SECONDS, None),
            ("wait=30", 30.0, "wait=30"),
            ("WAIT = 5", 5.0, "wait=5"),
            ('wait="7"', 7.0, "wait=7"),
            ("return=minimal, wait=10", 10.0, "wait=10"),
            ("respond-async", 0.0, "respond-async"),
            ("respond-async, wait=100", 0.0, "respond-async"),
            ("wait=100000", MAX_WAIT_SECONDS, "wait=100000"),
            ("handling=lenient", DEFAULT_WAIT_SECONDS, None),
        ],
    )
    def test_reads_the_preference(self, header: str | None, seconds: float, asked: str) -> None:
        preference = wait_preference(header)
        assert preference.seconds == seconds
        assert preference.asked == asked

    @pytest.mark.parametrize(
        "header", ["wait=", "wait=-1", "wait=1.5", "wait=soon", "wait=²", "wait=٣"]
    )
    def test_a_malformed_wait_is_refused_saying_what(self, header: str) -> None:
        with pytest.raises(BadRequestError, match="is not a whole number of seconds"):
            wait_preference(header)
