"""kill -9 of ``serve`` mid-conversion and right after a manual gate is advanced.

Before the kills, one graceful stop (SIGTERM, as a supervisor restarting it would send) in
mid-conversion: the engine stops at an item boundary within its grace period, quietly.

The service is restarted on the same database and port each time, as a supervisor would; the
plan still completes, every journal entry exists once and none is left pending, the tenant has
no duplicate schedules, nobody was made eligible or lost their active assignment twice, and
nobody ever held a role neither way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.blackbox.conftest import Launch, Operator, lockouts

pytestmark = pytest.mark.slow

# A tenant big enough that the all-admins conversion takes a while at 40 ms per request.
SIM_ARGS = (
    "--users",
    "800",
    "--admins",
    "200",
    "--seed",
    "21",
    "--latency-ms",
    "40",
    "--min-change-interval",
    "0",
)
# A restarted serve has a new worker id, so it waits for the dead one's lease to lapse.
ENV = {"PIM_ROLLOUT_SCHEDULER__LEASE_SECONDS": "10"}
MID_CONVERSION_KILLS = 3
DEADLINE_S = 6 * 60


async def test_kill_nine_mid_conversion_and_after_an_advance(
    launch: Launch, say: Callable[[str], None]
) -> None:
    began = time.monotonic()
    rng = random.Random(11)
    box = await launch(*SIM_ARGS, env=ENV)
    kills: list[tuple[str, str]] = []  # (kind, what): "sigterm", "conversion" or "advance"
    problems: list[str] = []
    restarts: list[float] = []

    async with box.api() as client:
        operator = Operator(box, client, deadline=began + DEADLINE_S)
        template = (await operator.call("GET", "/api/v1/plan-templates/demo")).json()
        converting = {p["key"] for p in template["phases"] if "convert_cohort" in p["steps"]}
        plan_id = await operator.create_plan(name="Kill")
        baseline = await box.sim_json("GET", "/_sim/state")
        since = await box.timeline_seq()
        done_at_kill: dict[str, int] = {}

        async def restart(kind: str, what: str) -> None:
            kills.append((kind, f"t+{time.monotonic() - began:.1f}s {what}"))
            restarts.append(await box.serve.start())

        async def kill_mid_conversion(plan: dict[str, Any]) -> bool:
            if sum(kind == "conversion" for kind, _ in kills) >= MID_CONVERSION_KILLS:
                return False
            graceful = not any(kind == "sigterm" for kind, _ in kills)
            for phase in plan["phases"]:
                progress = phase["progress"]
                if (
                    phase["key"] in converting
                    and phase["state"] == "running"
                    and progress["done"] > done_at_kill.get(phase["key"], 0)
                    and progress["remaining"] > 0
                ):
                    where = (
                        f"in {phase['key']} at done={progress['done']} "
                        f"remaining={progress['remaining']}"
                    )
                    done_at_kill[phase["key"]] = progress["done"]
                    if graceful:
                        stopped_in_time = box.serve.stop()
                        await restart("sigterm", f"SIGTERM {where} (in time: {stopped_in_time})")
                        if not stopped_in_time:
                            problems.append(f"SIGTERM {where}: still running after 15 s")
                        return True
                    box.serve.kill9()
                    await restart("conversion", f"kill {where}")
                    return True
            return False

        async def kill_after_first_advance(phase_key: str) -> None:
            if any(kind == "advance" for kind, _ in kills):
                return
            delay = rng.uniform(0.0, 0.1)
            await asyncio.sleep(delay)
            box.serve.kill9()
            await restart("advance", f"kill {delay * 1000:.0f} ms after advancing {phase_key}")

        await operator.act(plan_id, "start", {"reason": "kill -9"}, refused_ok=False)
        await operator.drive(
            plan_id,
            "completed",
            poll_seconds=0.15,
            on_plan=kill_mid_conversion,
            after_advance=kill_after_first_advance,
        )
        entries = await operator.operations(plan_id)

    after = await box.sim_json("GET", "/_sim/state")
    timeline = await box.sim_json("GET", f"/_sim/timeline?since_seq={since}")
    say(
        f"completed in {time.monotonic() - began:.0f}s with {box.serve.kills} kills "
        f"(restarts took {', '.join(f'{s:.1f}s' for s in restarts)}): "
        f"{[what for _, what in kills]}; "
        f"{len(entries)} journal entries; plan reads that failed: {len(operator.read_errors)}"
    )

    if not any(kind == "sigterm" for kind, _ in kills):
        problems.append("no SIGTERM mid-conversion: the conversion was too quick")
    mid = [what for kind, what in kills if kind == "conversion"]
    if len(mid) < MID_CONVERSION_KILLS:
        problems.append(f"only {len(mid)} mid-conversion kill(s): the conversion was too quick")
    if not any(kind == "advance" for kind, _ in kills):
        problems.append("no kill after an advance: the plan had no manual gate?")
    keys = Counter(e["idempotency_key"] for e in entries)
    twice = [key for key, n in keys.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} idempotency key(s) journaled more than once: {twice[:5]}")
    statuses = Counter(e["status"] for e in entries)
    pending = [e for e in entries if e["status"] == "pending"]
    if pending:
        problems.append(
            f"{len(pending)} journal entries left pending (statuses {dict(statuses)}): "
            f"{[(e['operation'], e['idempotency_key']) for e in pending[:5]]}"
        )
    schedules = Counter(
        (a["principal_id"], a["role_definition_id"]) for a in after["eligible_assignments"]
    )
    doubled = [key for key, n in schedules.items() if n > 1]
    if doubled:
        problems.append(f"{len(doubled)} principal+role with two eligible schedules: {doubled[:5]}")
    made_eligible = Counter(
        (c["principal_id"], c["role_definition_id"])
        for c in timeline
        if c["kind"] == "eligible" and c["change"] == "added"
    )
    active_removed = Counter(
        (c["principal_id"], c["role_definition_id"])
        for c in timeline
        if c["kind"] == "active" and c["change"] == "removed"
    )
    repeated = sorted(
        {k for k, n in made_eligible.items() if n > 1}
        | {k for k, n in active_removed.items() if n > 1}
    )
    if repeated:
        problems.append(f"{len(repeated)} conversion(s) done more than once: {repeated[:5]}")
    locked = lockouts(baseline, timeline)
    if locked:
        problems.append(f"{len(locked)} lockout instant(s), e.g. {locked[:5]}")
    log_report = box.serve.forbidden_report()
    if log_report:
        problems.append(log_report)
    assert not problems, "\n\n".join(problems)
