"""The HTTP commands against the product as it runs: ``serve`` and a simulated tenant as
processes, each command its own ``pim-rollout`` process, as a script would run them.

The demo plan (its phases a few seconds apart) is started, watched to each manual gate, advanced,
watched to completion and rolled back, with the exit codes and output a script relies on.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.blackbox.conftest import BlackBox, Launch, Operator
from tests.factories import ROOT
from tests.invariants.conftest import free_port

pytestmark = pytest.mark.slow

SIM_ARGS = ("--users", "120", "--admins", "20", "--seed", "7", "--min-change-interval", "0")
DEADLINE_S = 6 * 60
COMMAND_TIMEOUT_S = 240.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the commands are clients; the soak covers both databases."""
    return f"sqlite:///{tmp_path / 'ops.db'}"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float


class Cli:
    """``pim-rollout ARGS`` as its own process, with the server and token from the environment."""

    def __init__(self, box: BlackBox, token: str | None = None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PIM_ROLLOUT_")}
        self.env.update(
            {
                "PIM_ROLLOUT_SERVER": box.serve.url,
                "PIM_ROLLOUT_TOKEN": token or box.token,
                "COLUMNS": "200",
            }
        )
        self.secrets = {box.token, token or box.token}
        self.log: list[str] = []

    async def __call__(self, *args: str) -> Ran:
        began = time.monotonic()
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        ran = Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - began)
        self.log.append(f"{' '.join(args)} -> {ran.code} in {ran.seconds:.1f}s")
        for secret in self.secrets:
            assert secret not in ran.stdout + ran.stderr, f"the token was printed by {args}"
        return ran

    def expect(self, ran: Ran, code: int) -> None:
        assert ran.code == code, (
            f"exit {ran.code}, expected {code}\nstdout:\n{ran.stdout[-3000:]}\n"
            f"stderr:\n{ran.stderr[-3000:]}\ncommands: {self.log}"
        )


async def test_the_demo_plan_from_the_command_line(
    launch: Launch, say: Callable[[str], None]
) -> None:
    began = time.monotonic()
    box = await launch(*SIM_ARGS)
    cli = Cli(box)
    async with box.api() as client:
        operator = Operator(box, client, deadline=began + DEADLINE_S)
        plan_id = await operator.create_plan(name="Ops CLI")

    tenants = await cli("tenants", "list")
    cli.expect(tenants, 0)
    assert "Ops CLI" in tenants.stdout
    tenants_json = await cli("tenants", "list", "--output", "json")
    cli.expect(tenants_json, 0)
    (tenant,) = json.loads(tenants_json.stdout)

    # Prefer: wait=0: the server answers 202 with the job, which the command follows.
    started = await cli("plans", "start", plan_id, "--reason", "black box", "--wait", "0")
    cli.expect(started, 0)
    assert "running" in started.stdout

    got = await cli("plans", "get", plan_id, "--output", "json")
    cli.expect(got, 0)
    plan = json.loads(got.stdout)
    assert (plan["id"], plan["tenant_id"]) == (plan_id, tenant["id"])
    assert plan["state"] == "running"
    assert [p["key"] for p in plan["phases"]] == [
        "pilot",
        "feedback",
        "all-admins",
        "ga-approval",
        "access-reviews",
    ]

    # Watch to each manual gate, advance it, and watch on until the plan completes.
    for gate in ("feedback", "ga-approval"):
        watched = await cli("plans", "get", plan_id, "--watch", "--interval", "1")
        cli.expect(watched, 0)
        assert f"awaiting the manual gate of phase '{gate}'" in watched.stdout, watched.stdout
        advanced = await cli("plans", "advance", plan_id, "--phase", gate, "--reason", "go on")
        cli.expect(advanced, 0)
    finished = await cli("plans", "get", plan_id, "--watch", "--interval", "1")
    cli.expect(finished, 0)
    assert f"plan {plan_id} is completed" in finished.stdout
    assert "access-reviews" in finished.stdout

    refused = await cli("plans", "advance", plan_id, "--phase", "feedback")
    cli.expect(refused, 1)
    assert "409" in refused.stderr
    assert "(state: completed;" in refused.stderr

    rolled = await cli("plans", "rollback", plan_id, "--reason", "black box: undo")
    cli.expect(rolled, 0)
    assert "rolling_back" in rolled.stdout or "rolled_back" in rolled.stdout
    undone = await cli("plans", "get", plan_id, "--watch", "--interval", "1", "-o", "json")
    cli.expect(undone, 0)
    assert json.loads(undone.stdout)["state"] == "rolled_back"
    assert f"plan {plan_id} is rolled back" in undone.stderr

    stranger = Cli(box, token="pimr_not-a-token-of-this-server")
    cli.expect(await stranger("plans", "list"), 5)
    away = Cli(box)
    away.env["PIM_ROLLOUT_SERVER"] = f"http://127.0.0.1:{free_port()}"
    unreachable = await away("tenants", "list")
    away.expect(unreachable, 3)
    assert "cannot reach" in unreachable.stderr

    say(f"{len(cli.log)} commands in {time.monotonic() - began:.0f}s: " + "; ".join(cli.log))
