"""The database drops the engine's connection mid-tick (a failover, or PostgreSQL ending the
session of a process that stalled inside a transaction): the unit of work rolled back whole, as
after a crash, so the plan waits for the next tick instead of failing its phase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.db.repos.work_items import WorkItemRepository
from app.engine.tick import tick
from tests.engine.conftest import Rig
from tests.factories import plan_data


def convert_everyone() -> dict[str, Any]:
    data = plan_data()
    data["phases"] = [
        {
            "key": "all-admins",
            "title": "Every admin role holder",
            "starts_after": "PT0S",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        }
    ]
    return data


def connection_ended() -> DBAPIError:
    return DBAPIError(
        "UPDATE leases SET expires_at=%(expires_at)s",
        {},
        Exception("terminating connection due to idle-in-transaction timeout"),
        connection_invalidated=True,
    )


class TestConnectionLostMidTick:
    async def test_the_plan_waits_for_the_next_tick_instead_of_failing(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        plan_id = rig.create_plan(spec=convert_everyone())
        rig.act(plan_id, "start", reason="CHG-7")
        write = rig.ectx.db.write
        writes = 0

        async def drops_the_fifth_write(fn: Callable[[Session], Any]) -> Any:
            nonlocal writes
            writes += 1
            if writes == 5:
                raise connection_ended()
            return await write(fn)

        monkeypatch.setattr(rig.ectx.db, "write", drops_the_fifth_write)
        with structlog.testing.capture_logs() as captured:
            await tick(rig.ectx)
        assert writes >= 5, "the tick ended before the database dropped its connection"
        view = rig.view(plan_id)
        assert (view.row.state, [p.row.state for p in view.phases]) == ("running", ["running"])
        lost = [e for e in captured if e["event"] == "engine.database_connection_lost"]
        assert len(lost) == 1
        assert lost[0]["log_level"] == "warning"
        assert "idle-in-transaction" in lost[0]["error"]

        monkeypatch.setattr(rig.ectx.db, "write", write)
        view = await rig.run_until(plan_id, {"completed", "failed"})
        assert view.row.state == "completed"
        with rig.session_factory() as session:
            items = WorkItemRepository(session).list_items(plan_id)
            states = {i.state for i in items}
            assert "done" in states
            assert "failed" not in states, states
            assert all(i.attempts <= 1 for i in items), [(i.id, i.attempts) for i in items]
