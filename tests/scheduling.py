"""Order the collected tests so that the long ones start first, spread over the workers.

pytest-xdist's ``worksteal`` mode hands each worker a contiguous slice of the collection (equal
counts) and lets an idle worker take back the end of the longest queue. In collection order the
few long tests (minutes each) sit together in a slice or two and one worker runs them back to
back, long after the others ran out of work. Here each slice starts with its share of the long
tests, dealt longest first to the slice with the least expected time so far, and fills up with
short tests, which are what stealing moves around.

The expected seconds are a scheduling hint only (measured on 2 cores under the whole suite):
a wrong figure makes the suite slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

EXPECTED_SECONDS: dict[str, float] = {
    "tests/blackbox/test_soak.py": 300,
    "tests/invariants/test_faults.py": 240,
    "tests/blackbox/test_ops_cli.py": 100,
    "tests/blackbox/test_kill_restart.py": 90,
    "tests/invariants/test_crash.py": 60,
    "tests/api/test_fuzz.py": 60,
    "tests/invariants/test_two_workers.py": 40,
    "tests/ui/test_browser.py": 30,
}
"""Seconds per test of each module that holds long tests; other tests count as short."""


def expected_seconds(nodeid: str) -> float:
    return EXPECTED_SECONDS.get(nodeid.split("::", 1)[0], 0.0)


def slice_sizes(total: int, workers: int) -> list[int]:
    """How many tests each worker gets first: what ``worksteal`` sends to idle workers."""
    sizes = []
    remaining = total
    for left in range(workers, 0, -1):
        size = remaining // left
        sizes.append(size)
        remaining -= size
    return sizes


def longest_first(items: Sequence[T], workers: int, seconds: Callable[[T], float]) -> list[T]:
    """``items`` reordered for ``workers`` slices (the same order in every worker process)."""
    if workers < 2 or not items:
        return list(items)
    long = sorted((item for item in items if seconds(item) > 0), key=seconds, reverse=True)
    short = [item for item in items if seconds(item) <= 0]
    sizes = slice_sizes(len(items), workers)
    slices: list[list[T]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in long:
        open_slices = [i for i in range(workers) if len(slices[i]) < sizes[i]]
        target = min(open_slices, key=lambda i: (loads[i], i))
        slices[target].append(item)
        loads[target] += seconds(item)
    rest = iter(short)
    for i in range(workers):
        while len(slices[i]) < sizes[i]:
            slices[i].append(next(rest))
    return [item for part in slices for item in part]
