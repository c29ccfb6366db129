"""Fixtures for the Graph client tests: fake time, settings, limits, captured logs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from app.logging import redact_secrets
from app.settings import GraphSettings


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps.

    ``sleep`` records every delay (so tests can assert that ``Retry-After`` was honoured) and
    yields to the event loop once, so concurrent tasks still interleave.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.listeners: list[Callable[[float], None]] = []

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for listener in self.listeners:
            listener(seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def graph_settings() -> GraphSettings:
    return GraphSettings(
        max_concurrency=4,
        max_attempts=4,
        total_deadline_seconds=120.0,
        request_timeout_seconds=5.0,
        connect_timeout_seconds=2.0,
        backoff_base_seconds=0.5,
        backoff_max_seconds=8.0,
    )


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event as our code emitted it (before the project's redaction processor,
    so a test proves the client never logs a secret rather than relying on redaction)."""
    events: list[dict[str, Any]] = []

    def capture(_logger: Any, _method: str, event_dict: Any) -> Any:
        events.append(dict(event_dict))
        raise structlog.DropEvent

    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, capture, redact_secrets],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    try:
        yield events
    finally:
        structlog.configure(**previous)
