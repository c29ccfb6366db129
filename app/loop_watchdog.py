"""Find what blocks the event loop: any one callback that runs longer than a threshold.

Each callback the loop runs is timed (a thin wrapper around ``asyncio.Handle._run``, active
only on watched loops). A daemon thread looks at the callback running now; once it has run past
the threshold, the thread takes the loop thread's stack, which is the code that is blocking
it. When the callback ends, ``loop.blocked`` is logged with how long it took and that stack.
asyncio's debug mode names only the slow callback; this names the line.

Time the garbage collector spends inside a callback is measured apart (``gc.callbacks``) and
does not count towards the threshold: a collection can land in any callback, so it says nothing
about that callback's code. ``Stall.gc_seconds`` still reports it, and a collection that alone
runs past the threshold is logged as ``loop.gc_pause``: the loop stood still all the same (a
large heap makes full collections take seconds).

Time the loop thread spent ready to run but waiting for a CPU (the kernel's run-queue wait,
``/proc/.../schedstat``, on Linux) does not count either: on a machine with more runnable
threads than cores any callback can be preempted past the threshold, and that says nothing
about its code. ``Stall.runnable_seconds`` reports it; ``starved`` keeps the callbacks that only
preemption made long.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from app.logging import get_logger

log = get_logger(__name__)

_WATCHED: dict[int, LoopWatchdog] = {}
"""Loop thread id -> its watchdog."""
_PATCH_LOCK = threading.Lock()
_original_run: Any = None
_gc_seconds: dict[int, float] = {}
"""Thread id -> seconds its garbage collections took so far (watched threads only)."""
_gc_started: dict[int, float] = {}


def _time_collections(phase: str, _info: dict[str, Any]) -> None:
    thread = threading.get_ident()
    if thread not in _WATCHED:
        return
    if phase == "start":
        _gc_started[thread] = time.monotonic()
    elif (began := _gc_started.pop(thread, None)) is not None:
        _gc_seconds[thread] = _gc_seconds.get(thread, 0.0) + time.monotonic() - began


@dataclass(frozen=True)
class Stall:
    seconds: float
    stack: str
    coroutine_file: str | None = None
    """The file of the innermost coroutine outside the libraries: whose code was blocking."""
    gc_seconds: float = 0.0
    """Of ``seconds``, how long the garbage collector ran (not counted against the code)."""
    runnable_seconds: float = 0.0
    """Of ``seconds``, how long the thread waited for a CPU (not counted against the code)."""


def _install_callback_timer() -> None:
    global _original_run
    with _PATCH_LOCK:
        if _original_run is not None:
            return
        _original_run = asyncio.events.Handle._run
        gc.callbacks.append(_time_collections)

        def _timed_run(handle: asyncio.Handle) -> None:
            thread = threading.get_ident()
            watchdog = _WATCHED.get(thread)
            if watchdog is None:
                _original_run(handle)
                return
            collecting_before = _gc_seconds.get(thread, 0.0)
            queued_before = watchdog.run_queue_seconds()
            started = time.monotonic()
            watchdog.current_start = started
            try:
                _original_run(handle)
            finally:
                watchdog.current_start = None
                seconds = time.monotonic() - started
                collecting = _gc_seconds.get(thread, 0.0) - collecting_before
                queued = 0.0
                if seconds - collecting > watchdog.threshold_s:
                    queued = max(0.0, watchdog.run_queue_seconds() - queued_before)
                watchdog.callback_ended(started, seconds, handle, collecting, queued)

        asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign,assignment]


@dataclass
class LoopWatchdog:
    threshold_s: float
    loop_thread_id: int
    stalls: list[Stall] = field(default_factory=list)
    gc_pauses: list[float] = field(default_factory=list)
    """Seconds of each garbage collection, inside one callback, longer than the threshold."""
    starved: list[Stall] = field(default_factory=list)
    """Callbacks past the threshold only because the thread waited for a CPU that long."""
    current_start: float | None = None
    _schedstat: int | None = None
    _samples: dict[float, tuple[str, str | None]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, *, threshold_s: float = 0.1) -> LoopWatchdog:
        """Watch the loop of the calling thread (call from inside it)."""
        asyncio.get_running_loop()  # only a running loop's thread can be watched
        _install_callback_timer()
        watchdog = cls(threshold_s, threading.get_ident())
        watchdog._schedstat = _open_schedstat()
        _WATCHED[watchdog.loop_thread_id] = watchdog
        watchdog._thread = threading.Thread(
            target=watchdog._watch, name="loop-watchdog", daemon=True
        )
        watchdog._thread.start()
        return watchdog

    def stop(self) -> None:
        if _WATCHED.get(self.loop_thread_id) is self:
            del _WATCHED[self.loop_thread_id]
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1)
        fd, self._schedstat = self._schedstat, None
        if fd is not None:
            os.close(fd)

    def run_queue_seconds(self) -> float:
        """Seconds the loop thread has waited for a CPU so far (0 where the kernel won't say)."""
        if self._schedstat is None:
            return 0.0
        try:
            return int(os.pread(self._schedstat, 64, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def callback_ended(
        self,
        started: float,
        seconds: float,
        handle: asyncio.Handle,
        gc_seconds: float = 0.0,
        runnable_seconds: float = 0.0,
    ) -> None:
        """On the loop thread, after each callback: record it if it blocked too long."""
        sample = self._samples.pop(started, None)
        if gc_seconds > self.threshold_s:
            self.gc_pauses.append(gc_seconds)
            log.warning("loop.gc_pause", gc_ms=round(gc_seconds * 1000))
        if seconds - gc_seconds <= self.threshold_s:
            return
        stack, coroutine_file = sample or (f"(ended before its stack was taken) {handle!r}\n", None)
        stall = Stall(seconds, stack, coroutine_file, gc_seconds, runnable_seconds)
        if seconds - gc_seconds - runnable_seconds <= self.threshold_s:
            self.starved.append(stall)
            return
        self.stalls.append(stall)
        log.warning(
            "loop.blocked",
            blocked_ms=round(seconds * 1000),
            gc_ms=round(gc_seconds * 1000),
            runnable_ms=round(runnable_seconds * 1000),
            stack=stall.stack,
        )

    def _watch(self) -> None:
        interval = max(self.threshold_s / 4, 0.005)
        while not self._stop.wait(interval):
            started = self.current_start
            if started is None or started in self._samples:
                continue
            if time.monotonic() - started > self.threshold_s:
                self._samples[started] = self._loop_stack()

    def _loop_stack(self) -> tuple[str, str | None]:
        frame = sys._current_frames().get(self.loop_thread_id)
        if frame is None:
            return "(no frame)\n", None
        try:
            return "".join(traceback.format_stack(frame)), _innermost_own_coroutine(frame)
        except Exception as exc:
            # The loop thread runs on while its stack is read, and CPython can hand out a frame
            # whose f_back is no longer a frame; the stall is still reported, without its stack.
            return f"(the stack changed while it was read: {type(exc).__name__})\n", None


def _open_schedstat() -> int | None:
    """The calling thread's scheduler statistics (Linux), or None where there are none."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
    except OSError:
        return None
    try:
        int(os.pread(fd, 64, 0).split()[1])
    except (OSError, IndexError, ValueError):
        os.close(fd)
        return None
    return fd


_LIBRARIES = tuple({p for p in (sys.prefix, sys.base_prefix, sys.exec_prefix) if p} | {"<"})
_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def _innermost_own_coroutine(frame: FrameType | None) -> str | None:
    while frame is not None:
        code = frame.f_code
        if code.co_flags & _ASYNC_FLAGS and not code.co_filename.startswith(_LIBRARIES):
            return code.co_filename
        frame = frame.f_back
    return None
