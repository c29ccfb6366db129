"""Invariant 6: two workers on one PostgreSQL database, one tenant; no item is done twice.

One worker is frozen (SIGSTOP) in the middle of the conversion for longer than its lease, the
other takes the plan over, then the frozen one wakes up (SIGCONT) still believing it holds the
plan: its fencing token no longer matches, so it writes nothing.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from app.db.models import Lease, Transition
from app.db.repos.work_items import WorkItemRepository
from app.db.session import SessionFactory
from app.services.secrets import SecretBox
from tests.engine.helpers import no_lockout, permanent_active
from tests.invariants.conftest import Sim, plan_state, setup_plan, start_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sim_args(
        "--users",
        "600",
        "--admins",
        "120",
        "--seed",
        "33",
        "--latency-ms",
        "4",
        "--min-change-interval",
        "0",
    ),
]


def _wait(session_factory: SessionFactory, plan_id: str, states: set[str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    state = plan_state(session_factory, plan_id)
    while time.monotonic() < deadline and state not in states:
        time.sleep(0.2)
        state = plan_state(session_factory, plan_id)
    return state


def _lease_holder(session_factory: SessionFactory, plan_id: str) -> str | None:
    with session_factory() as session:
        lease = session.exec(select(Lease).where(Lease.name == f"plan:{plan_id}")).first()
        return lease.holder if lease is not None else None


def _wait_for_conversion_under_lease(
    session_factory: SessionFactory, plan_id: str, seconds: float
) -> str:
    """The worker holding the plan once some, but not all, conversions are done."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with session_factory() as session:
            states = Counter(i.state for i in WorkItemRepository(session).list_items(plan_id))
        holder = _lease_holder(session_factory, plan_id)
        if holder and states["done"] > 0 and states["pending"] > 0:
            return holder
        time.sleep(0.05)
    raise AssertionError("the conversion never got under way")


def _wait_for_holder(
    session_factory: SessionFactory, plan_id: str, worker_id: str, seconds: float
) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _lease_holder(session_factory, plan_id) == worker_id:
            return True
        time.sleep(0.1)
    return False


class TestTwoWorkers:
    def test_no_item_done_twice(
        self, standalone_sim: Sim, database_url: str, session_factory: SessionFactory
    ) -> None:
        if not database_url.startswith("postgresql"):
            pytest.skip("several replicas share one PostgreSQL database; SQLite is single-node")
        before = standalone_sim.get("/_sim/state")
        plan_id = setup_plan(session_factory, standalone_sim, SecretBox(Fernet.generate_key()))
        first = start_worker(database_url, "worker-a", seconds=120)
        second = start_worker(database_url, "worker-b", seconds=120)
        try:
            holder_id = _wait_for_conversion_under_lease(session_factory, plan_id, 60)
            holder, other_id = (
                (first, "worker-b") if holder_id == "worker-a" else (second, "worker-a")
            )
            holder.send_signal(signal.SIGSTOP)  # a stall longer than the 4 s lease
            try:
                assert _wait_for_holder(session_factory, plan_id, other_id, 30), (
                    f"{other_id} never took the plan over from the stalled {holder_id}"
                )
                time.sleep(1)  # let the new holder work while the old one still believes
            finally:
                holder.send_signal(signal.SIGCONT)
            assert _wait(session_factory, plan_id, {"completed", "failed"}, 120) == "completed"
        finally:
            for worker in (first, second):
                worker.kill()
                worker.wait()

        timeline = standalone_sim.get("/_sim/timeline")
        with session_factory() as session:
            items = WorkItemRepository(session).list_items(plan_id)
            actors = {
                t.actor
                for t in session.exec(select(Transition).where(Transition.plan_id == plan_id))
            }
        done = [i for i in items if i.state == "done"]
        assert len(done) > 100
        added = Counter(
            (c["principal_id"], c["role_definition_id"])
            for c in timeline
            if c["kind"] == "eligible" and c["change"] == "added"
        )
        removed = Counter(
            (c["principal_id"], c["role_definition_id"])
            for c in timeline
            if c["kind"] == "active" and c["change"] == "removed"
        )
        for item in done:
            key = (item.principal_id, item.role_definition_id)
            assert added[key] == 1, f"{key} made eligible {added[key]} times"
            assert removed[key] == 1, f"{key} lost its Active assignment {removed[key]} times"
        assert {"scheduler (worker-a)", "scheduler (worker-b)"} <= actors, actors
        holders = {(p, r) for p, r, _ in permanent_active(before)}
        assert no_lockout(timeline, holders) == []
