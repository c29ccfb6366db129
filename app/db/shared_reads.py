"""Identical reads in flight at once share one unit of work.

Many clients poll the same few things (a plan being rolled out, ``/healthz``): dashboards, the
UI's refresh, ``plans get --watch``, probes. Under load each would otherwise cost its own
worker-thread trip and queries for the same answer. A read asked for while the same read (same
key) is running joins it, unless this process has ended a write unit since that read was
asked for: then it might miss the write, so a fresh read starts. A caller that wrote and then
reads therefore always sees its write; nothing is kept once a read has answered, so there is no
staleness beyond the read's own few milliseconds.

Used on the event loop only. The shared read runs as a task of its own, so a caller that gives
up (a client that disconnects) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlmodel import Session

from app.db.session import Database

T = TypeVar("T")


@dataclass
class _InFlight:
    generation: int
    task: asyncio.Task[Any]


class SharedReads:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._in_flight: dict[tuple[int, Hashable], _InFlight] = {}
        self.started = 0
        """Reads started (for tests and metrics): fewer than asked for when reads are shared."""

    async def read(self, key: Hashable, fn: Callable[[Session], T]) -> T:
        """``fn`` in a read unit, or the result of the same read already in flight."""
        loop_key = (id(asyncio.get_running_loop()), key)
        generation = self.db.generation
        entry = self._in_flight.get(loop_key)
        if entry is None or entry.generation != generation or entry.task.done():
            entry = _InFlight(generation, asyncio.ensure_future(self.db.read(fn)))
            self.started += 1
            self._in_flight[loop_key] = entry
            entry.task.add_done_callback(lambda task: self._forget(loop_key, task))
        result: T = await asyncio.shield(entry.task)
        return result

    def _forget(self, loop_key: tuple[int, Hashable], task: asyncio.Task[Any]) -> None:
        entry = self._in_flight.get(loop_key)
        if entry is not None and entry.task is task:
            del self._in_flight[loop_key]
        if not task.cancelled():
            task.exception()  # a failure is the joiners' to raise; it is retrieved here too
