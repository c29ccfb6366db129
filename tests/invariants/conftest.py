"""A standalone simulated tenant in its own process, and helpers to run worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db.session import SessionFactory, unit_of_work
from app.domain.tenant import TenantSpec
from app.services import plans, tenants
from app.services.secrets import SecretBox
from tests.engine.conftest import graph_settings, rig, sim_size  # noqa: F401  (shared fixtures)
from tests.factories import ROOT, plan_data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sim:
    url: str
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=30).json()

    def put(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.put(self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()


def start_sim(*args: str) -> Sim:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "simulate-tenant", "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/_sim/profile", timeout=1).status_code == 200:
                return Sim(url, process)
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "sim died")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the simulated tenant did not start")


@pytest.fixture
def standalone_sim(request: pytest.FixtureRequest) -> Iterator[Sim]:
    marker = request.node.get_closest_marker("sim_args")
    sim = start_sim(*(marker.args if marker else ()))
    try:
        yield sim
    finally:
        sim.process.send_signal(signal.SIGTERM)
        try:
            sim.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait()
        if sim.process.stderr is not None:
            sim.process.stderr.close()


def start_worker(
    database_url: str, worker_id: str, seconds: float = 120
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.invariants.worker", database_url, worker_id, str(seconds)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def invariant_plan() -> dict[str, Any]:
    """Settings, a conversion of every remaining holder, then reviews: every kind of mutation."""
    data = plan_data()
    pilot = data["phases"][0]
    data["name"] = "invariants"
    data["phases"] = [
        {
            "key": "convert",
            "title": "Convert everyone",
            "starts_after": "PT0S",
            "steps": [pilot["steps"][0], {"kind": "convert_cohort", "cohort": {"remaining": True}}],
        },
        {**data["phases"][4], "starts_after": "PT0S"},
    ]
    return data


def setup_plan(
    session_factory: SessionFactory, sim: Sim, box: SecretBox, *, start: bool = True
) -> str:
    from datetime import UTC, datetime

    from app.domain.machine import Event

    profile = sim.get("/_sim/profile")
    spec = TenantSpec.model_validate(
        {
            **profile,
            "name": "Simulated",
            "graph_base_url": sim.url + "/v1.0",
            "graph_limits": {"min_change_interval_seconds": 0, "max_concurrency": 4},
        }
    )
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        tenant = tenants.create_tenant(session, spec=spec, box=box, now=now)
        plan_id = plans.create_plan(
            session,
            tenant_id=tenant.id,
            plans_dir=None,
            template=None,
            spec_data=invariant_plan(),
            name=None,
            binding_overrides={},
            actor="test",
            now=now,
        ).row.id
        if start:
            plans.perform_action(
                session, plan_id=plan_id, event=Event.start, actor="test", reason=None, now=now
            )
    return plan_id


def plan_state(session_factory: SessionFactory, plan_id: str) -> str:
    with session_factory() as session:
        return plans.get_plan_view(session, plan_id).row.state


_ = Path
