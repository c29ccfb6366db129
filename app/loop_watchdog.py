"""Find what blocks the event loop: a thread that notices when the loop stops answering.

The loop runs a heartbeat task; a daemon thread checks it. When no beat came for longer than
the threshold, the thread takes the loop thread's current stack (the code that is blocking it)
and, once the loop answers again, logs ``loop.blocked`` with how long it was stuck and where.
asyncio's debug mode names only the slow callback; this names the line.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from app.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Stall:
    seconds: float
    stack: str


@dataclass
class LoopWatchdog:
    threshold_s: float
    loop: asyncio.AbstractEventLoop
    loop_thread_id: int
    stalls: list[Stall] = field(default_factory=list)
    _last_beat: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat_task: asyncio.Task[None] | None = None
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, *, threshold_s: float = 0.1) -> LoopWatchdog:
        """Watch the running loop (call from inside it)."""
        watchdog = cls(threshold_s, asyncio.get_running_loop(), threading.get_ident())
        watchdog._beat_task = watchdog.loop.create_task(watchdog._beat(), name="loop-watchdog")
        watchdog._thread = threading.Thread(target=watchdog._watch, name="loop-watchdog", daemon=True)
        watchdog._thread.start()
        return watchdog

    def stop(self) -> None:
        self._stop.set()
        if self._beat_task is not None:
            self._beat_task.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1)

    @property
    def _interval(self) -> float:
        return max(self.threshold_s / 5, 0.005)

    async def _beat(self) -> None:
        while True:
            self._last_beat = time.monotonic()
            await asyncio.sleep(self._interval)

    def _watch(self) -> None:
        stuck_since: float | None = None
        stack = ""
        while not self._stop.wait(self._interval):
            beat = self._last_beat
            silent = time.monotonic() - beat
            if stuck_since is None:
                if silent > self.threshold_s + self._interval:
                    stuck_since = beat
                    stack = self._loop_stack()
                continue
            if beat > stuck_since:  # the loop answered again
                self._report(beat - stuck_since, stack)
                stuck_since = None

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self.loop_thread_id)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"

    def _report(self, seconds: float, stack: str) -> None:
        blocked = seconds - self._interval  # the beat's own sleep is not blocking
        if blocked <= self.threshold_s:
            return
        stall = Stall(blocked, stack)
        self.stalls.append(stall)
        log.warning("loop.blocked", blocked_ms=round(blocked * 1000), stack=stack)
