"""The order that spreads the long tests over the xdist workers (``tests/scheduling.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.scheduling import longest_first, slice_sizes


def _slices(order: list[str], workers: int) -> list[list[str]]:
    slices, at = [], 0
    for size in slice_sizes(len(order), workers):
        slices.append(order[at : at + size])
        at += size
    return slices


def _seconds(name: str) -> float:
    return float(name.split(":")[1]) if name.startswith("long:") else 0.0


class TestLongestFirst:
    def test_each_worker_starts_with_its_share_of_the_long_tests(self) -> None:
        items = [f"short{i}" for i in range(20)] + ["long:300", "long:300", "long:240"]
        items += ["long:240", "long:90"]
        slices = _slices(longest_first(items, 4, _seconds), 4)
        firsts = [s[0] for s in slices]
        assert sorted(firsts) == ["long:240", "long:240", "long:300", "long:300"]
        # The fifth goes to a worker with the least expected time: one of the 240 s ones.
        with_two = [s for s in slices if sum(1 for n in s if n.startswith("long")) == 2]
        assert len(with_two) == 1
        assert with_two[0][:2] == ["long:240", "long:90"]

    def test_short_tests_keep_their_collection_order(self) -> None:
        items = [f"short{i:02}" for i in range(12)] + ["long:60"]
        order = longest_first(items, 3, _seconds)
        assert [n for n in order if n.startswith("short")] == items[:12]

    def test_one_worker_keeps_the_collection_order(self) -> None:
        items = ["short", "long:60", "short2"]
        assert longest_first(items, 1, _seconds) == items

    @given(
        st.lists(st.sampled_from(["short", "long:10", "long:100"]), max_size=40),
        st.integers(min_value=1, max_value=6),
    )
    def test_the_same_tests_in_slices_of_the_sizes_xdist_sends(
        self, kinds: list[str], workers: int
    ) -> None:
        items = [f"{kind}#{i}" if kind == "short" else kind for i, kind in enumerate(kinds)]
        order = longest_first(items, workers, lambda n: _seconds(n.split("#")[0]))
        assert sorted(order) == sorted(items)
        sizes = [len(s) for s in _slices(order, workers)]
        assert sum(sizes) == len(items)
        assert max(sizes, default=0) - min(sizes, default=0) <= 1
