"""Soak: the demo plan's whole rollout and rollback (its phases a few seconds apart), while 50
dashboards poll the service.

``serve`` and the simulated tenant run as their own processes; everything goes over HTTP. A
healthy service answers every poll (no transport error, no 5xx, nothing slower than 10 s),
logs nothing alarming, and leaves the tenant exactly as it found it, with nobody ever holding
a role neither way. Run with faults too: 10% of Graph requests answered 5xx and 3% of writes
committed with the answer lost; an operator retries what the engine's own retries could not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.blackbox.conftest import (
    Launch,
    Operator,
    holdings,
    holdings_diff,
    lockouts,
    run_pollers,
)

pytestmark = pytest.mark.slow

SIM_ARGS = (
    "--users",
    "300",
    "--admins",
    "40",
    "--seed",
    "7",
    "--latency-ms",
    "40",
    "--min-change-interval",
    "0",
)
FAULT_ARGS = ("--fault-rate", "0.1", "--lost-response-rate", "0.03")
POLLERS = 50
DEADLINE_S = 6 * 60
FAULTS_DEADLINE_S = 9 * 60
# With faults an item can fail every one of the engine's attempts; the phase then ends
# ``failed`` and the operator retries (or re-sends the rollback), at most this often.
OPERATOR_RETRIES = 4


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
async def test_rollout_and_rollback_under_pollers(
    launch: Launch, say: Callable[[str], None], faults: bool
) -> None:
    began = time.monotonic()
    if faults:
        # The engine works item by item, so every fault's wait adds up: a lost answer hangs
        # 3 s (instead of 60) and the product gives up after 2 s and verifies; a 503 asks for
        # 1 s (instead of up to 5); other 5xx are retried after 0.1 s, doubling. As many
        # faults, each cheaper to wait out.
        box = await launch(
            *SIM_ARGS,
            *FAULT_ARGS,
            env={
                "PIM_ROLLOUT_GRAPH__REQUEST_TIMEOUT_SECONDS": "2",
                "PIM_ROLLOUT_GRAPH__BACKOFF_BASE_SECONDS": "0.1",
            },
        )
        await box.sim_json(
            "PUT",
            "/_sim/faults",
            {"lost_response_hang_seconds": 3, "unavailable_retry_after_max_seconds": 1},
        )
    else:
        box = await launch(*SIM_ARGS)
    retries = OPERATOR_RETRIES if faults else 0

    async with box.api() as client:
        deadline = began + (FAULTS_DEADLINE_S if faults else DEADLINE_S)
        operator = Operator(box, client, deadline=deadline)
        plan_id = await operator.create_plan()
        baseline = await box.sim_json("GET", "/_sim/state")
        since = await box.timeline_seq()

        async with run_pollers(box, plan_id, POLLERS) as load:
            operator.context = load.summary
            started = time.monotonic()
            await operator.act(plan_id, "start", {"reason": "soak"}, refused_ok=False)
            await operator.drive(plan_id, "completed", again="retry", operator_retries=retries)
            completed = time.monotonic()
            await operator.act(plan_id, "rollback", {"reason": "soak: undo"}, refused_ok=False)
            await operator.drive(plan_id, "rolled_back", again="rollback", operator_retries=retries)
            rolled_back = time.monotonic()

    after = await box.sim_json("GET", "/_sim/state")
    timeline = await box.sim_json("GET", f"/_sim/timeline?since_seq={since}")
    graph = await box.sim_json("GET", "/_sim/requests")
    say(
        f"Graph: {graph['total']} requests, {graph['faulted']} answered 5xx, {graph['lost']} "
        f"answers lost, {graph['throttled']} throttled"
    )
    say(
        f"rollout {completed - started:.0f}s, rollback {rolled_back - completed:.0f}s, "
        f"whole test {time.monotonic() - began:.0f}s; actions: {'; '.join(operator.actions)}"
    )
    say(load.summary())

    problems: list[str] = []
    if faults and not (graph["faulted"] and graph["lost"]):
        problems.append(f"the simulated tenant injected no faults: {graph}")
    if load.failed:
        problems.append(load.summary())
    if operator.read_errors:
        problems.append(
            f"the operator's own plan reads failed {len(operator.read_errors)} time(s): "
            f"{operator.read_errors[:5]}"
        )
    log_report = box.serve.forbidden_report()
    if log_report:
        problems.append(log_report)
    diff = holdings_diff(holdings(baseline), holdings(after))
    if diff:
        problems.append(diff)
    locked = lockouts(baseline, timeline)
    if locked:
        problems.append(f"{len(locked)} lockout instant(s), e.g. {locked[:5]}")
    assert not problems, "\n\n".join(problems)
