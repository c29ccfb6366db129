"""Invariant 5: SIGKILL at random points, restart, and the work finishes exactly once.

The worker runs in a child process against a standalone simulated tenant (its own process, so
the tenant's state survives the kills). At the end: every item done once, no duplicate Graph
objects, and, from the tenant's timeline, no principal without access at any instant.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from cryptography.fernet import Fernet

from app.db.repos.work_items import WorkItemRepository
from app.db.session import SessionFactory
from app.domain.progress import WorkItemState
from app.services.secrets import SecretBox
from tests.engine.helpers import eligible, no_lockout, permanent_active
from tests.invariants.conftest import Sim, plan_state, setup_plan, start_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sim_args(
        "--users",
        "600",
        "--admins",
        "120",
        "--seed",
        "21",
        "--latency-ms",
        "4",
        "--min-change-interval",
        "0",
    ),
]


def _run_with_kills(
    database_url: str,
    plan_id: str,
    session_factory: SessionFactory,
    until: set[str],
    kills: int,
    rng: random.Random,
) -> int:
    done_kills = 0
    while done_kills < kills:
        worker = start_worker(database_url, "crash-worker")
        time.sleep(rng.uniform(0.4, 1.6))
        worker.kill()  # SIGKILL: no cleanup, no rollback handlers, nothing
        worker.wait()
        done_kills += 1
        if plan_state(session_factory, plan_id) in until:
            break
    worker = start_worker(database_url, "crash-worker", seconds=90)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and plan_state(session_factory, plan_id) not in until:
        time.sleep(0.3)
    worker.kill()
    worker.wait()
    return done_kills


class TestCrashSafety:
    def test_kill_nine_during_conversion_and_rollback(
        self, standalone_sim: Sim, database_url: str, session_factory: SessionFactory
    ) -> None:
        rng = random.Random(5)
        before = standalone_sim.get("/_sim/state")
        plan_id = setup_plan(session_factory, standalone_sim, SecretBox(Fernet.generate_key()))

        kills = _run_with_kills(
            database_url, plan_id, session_factory, {"completed", "failed"}, 12, rng
        )
        assert kills >= 3, "the conversion finished before it could be interrupted"
        assert plan_state(session_factory, plan_id) == "completed"

        after = standalone_sim.get("/_sim/state")
        timeline = standalone_sim.get("/_sim/timeline")
        with session_factory() as session:
            items = WorkItemRepository(session).list_items(plan_id)
        converted = [i for i in items if i.state == WorkItemState.done.value]
        assert len(converted) > 100
        assert {i.state for i in items} <= {"done", "skipped", "kept_active"}
        eligible_added = Counter(
            (c["principal_id"], c["role_definition_id"])
            for c in timeline
            if c["kind"] == "eligible" and c["change"] == "added"
        )
        active_removed = Counter(
            (c["principal_id"], c["role_definition_id"])
            for c in timeline
            if c["kind"] == "active" and c["change"] == "removed"
        )
        for item in converted:
            key = (item.principal_id, item.role_definition_id)
            assert eligible_added[key] == 1, f"{key} made eligible {eligible_added[key]} times"
            assert active_removed[key] == 1, f"{key} removed {active_removed[key]} times"
        schedules = Counter(
            (a["principal_id"], a["role_definition_id"], a["directory_scope_id"])
            for a in after["eligible_assignments"]
        )
        assert max(schedules.values()) == 1, "duplicate eligible assignments in the tenant"
        assert len(after["review_definitions"]) == len(
            {r["displayName"] for r in after["review_definitions"]}
        )
        holders = {(p, r) for p, r, _ in permanent_active(before)}
        assert no_lockout(timeline, holders) == []

        from datetime import UTC, datetime

        from app.db.session import unit_of_work
        from app.domain.machine import Event
        from app.services import plans

        with unit_of_work(session_factory) as session:
            plans.perform_action(
                session,
                plan_id=plan_id,
                event=Event.rollback,
                actor="test",
                reason="undo under fire",
                now=datetime.now(UTC),
            )
        _run_with_kills(database_url, plan_id, session_factory, {"rolled_back", "failed"}, 8, rng)
        assert plan_state(session_factory, plan_id) == "rolled_back"
        restored = standalone_sim.get("/_sim/state")
        assert permanent_active(restored) == permanent_active(before)
        assert eligible(restored) == eligible(before)
        assert restored["review_definitions"] == []
        assert no_lockout(standalone_sim.get("/_sim/timeline"), holders) == []
