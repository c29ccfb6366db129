"""Conversion throughput against the standalone simulated tenant.

Converts 2,000 standing assignments with 100 ms latency per request and a write quota of W
writes/s (Graph's 20 writes/s scaled up so the run stays short). One conversion is two writes,
so the ceiling is W/2 conversions/s. The same run measures a one-request-at-a-time converter
(what the PowerShell tools in this field do) on a sample, against its own fresh tenant.

    python bench/convert.py [--assignments 2000] [--write-quota 200] [--latency-ms 100]

The last line is ``conversions_per_s=… ceiling_ratio=… speedup=… throttled=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.migrate import upgrade  # noqa: E402
from app.db.repos.work_items import WorkItemRepository  # noqa: E402
from app.db.session import Database, create_db_engine, create_session_factory, unit_of_work  # noqa: E402
from app.domain.roles import BUILT_IN_ROLES, LAST_ACTIVE_PROTECTED  # noqa: E402
from app.domain.tenant import TenantSpec  # noqa: E402
from app.engine import actions  # noqa: E402
from app.engine.context import EngineContext  # noqa: E402
from app.engine.tick import tick  # noqa: E402
from app.graph.factory import GraphClientFactory  # noqa: E402
from app.logging import configure_logging  # noqa: E402
from app.services import plans, tenants  # noqa: E402
from app.services.context import SystemClock  # noqa: E402
from app.services.secrets import SecretBox  # noqa: E402
from app.settings import GraphSettings  # noqa: E402
from app.simulator.builders import add_outside_pim_assignment  # noqa: E402
from app.simulator.seed import generate_tenant, save_tenant  # noqa: E402

TARGET_ROLES = [r.id for r in BUILT_IN_ROLES if r.privileged and "Reader" not in r.name][:8]


def build_tenant_file(path: Path, assignments: int) -> int:
    """A tenant whose convertible assignments number exactly ``assignments``."""
    state = generate_tenant(users=assignments + 400, admins=60, seed=3)
    taken = {(s.principal_id, s.role_definition_id) for s in state.actives}
    profile_ids = set(state.profile.break_glass_ids)
    spare = [
        u
        for u in state.users.values()
        if u.id not in profile_ids and not any(p == u.id for p, _ in taken)
    ]
    convertible = [
        s
        for s in state.actives
        if s.role_definition_id in TARGET_ROLES
        and s.principal_id in state.users
        and s.principal_id not in profile_ids
    ]
    # PIM refuses to remove the last active holder of these roles, so one holder stays Active
    # unless a break-glass account (never converted) is among the holders.
    kept_last = sum(
        1
        for role in TARGET_ROLES
        if role in LAST_ACTIVE_PROTECTED
        and any(s.role_definition_id == role for s in convertible)
        and not any(
            s.role_definition_id == role and s.principal_id in profile_ids for s in state.actives
        )
    )
    count = len(convertible) - kept_last
    now = datetime.now(UTC)
    index = 0
    while count < assignments:
        user = spare[index]
        add_outside_pim_assignment(state, user.id, TARGET_ROLES[index % len(TARGET_ROLES)], at=now)
        index += 1
        count += 1
    save_tenant(state, path)
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sim(
    tenant_file: Path, latency_ms: float, write_quota: int
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate-tenant",
            "--port",
            str(port),
            "--tenant-file",
            str(tenant_file),
            "--latency-ms",
            str(latency_ms),
            "--write-quota",
            str(write_quota),
            "--write-window-seconds",
            "1",
            "--min-change-interval",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/_sim/profile", timeout=1).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the simulated tenant did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def conversion_plan() -> dict[str, Any]:
    return {
        "name": "bench",
        "roles": [{"id": role} for role in TARGET_ROLES],
        "phases": [
            {
                "key": "convert",
                "title": "Convert every standing holder",
                "starts_after": "PT0S",
                "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
            }
        ],
    }


async def run_engine(
    url: str, write_quota: int, workdir: Path
) -> tuple[int, float, dict[str, float]]:
    database = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(database)
    engine = create_db_engine(database)
    factory = create_session_factory(engine)
    graph = GraphClientFactory(GraphSettings(max_concurrency=16))
    box = SecretBox(Fernet.generate_key())
    ectx = EngineContext(
        db=Database(factory),
        graph_factory=graph,
        secret_box=box,
        clock=SystemClock(),
        worker_id="bench",
    )
    async with httpx.AsyncClient(timeout=30) as http:
        profile = (await http.get(url + "/_sim/profile")).json()
    spec = TenantSpec.model_validate(
        {
            **profile,
            "name": "bench",
            "graph_base_url": url + "/v1.0",
            "graph_limits": {
                "write_quota": write_quota,
                "write_window_seconds": 1,
                "max_concurrency": 16,
                "min_change_interval_seconds": 0,
                # The bench tenant has no other writer: the product may use its whole quota.
                "pacing_share": 1.0,
            },
        }
    )
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        tenant = tenants.create_tenant(session, spec=spec, box=box, now=now)
        plan_id = plans.create_plan(
            session,
            tenant_id=tenant.id,
            plans_dir=None,
            template=None,
            spec_data=conversion_plan(),
            name="bench",
            binding_overrides={},
            actor="bench",
            now=now,
        ).row.id
    await actions.start(ectx, plan_id=plan_id, actor="bench", reason=None, expected_version=None)
    async with httpx.AsyncClient(timeout=30) as http:
        await http.delete(url + "/_sim/request-log")
    started = time.perf_counter()
    started_at = time.time()
    while True:
        await tick(ectx)
        with factory() as session:
            state = plans.get_plan_view(session, plan_id).row.state
        if state in {"completed", "failed"}:
            break
    run_s = time.perf_counter() - started
    async with httpx.AsyncClient(timeout=60) as http:
        log = (await http.get(url + "/_sim/request-log")).json()["requests"]
    writes = [entry["at"] for entry in log if entry["method"] == "POST"]
    # Where the time outside the paced writes went (when the log still holds the first POST;
    # a POST is a $batch of writes or of read-backs).
    timing = (
        {
            "first_post_s": round(writes[0] - started_at, 2),
            "posts_s": round(writes[-1] - writes[0], 2),
            "after_last_post_s": round(started_at + run_s - writes[-1], 2),
        }
        if writes and len(log) < 10_000
        else {}
    )
    with factory() as session:
        items = [i for i in WorkItemRepository(session).list_items(plan_id) if i.state == "done"]
    done = len(items)
    # Up to the last conversion: the phase's posture report, read once it completes, is not
    # conversion work.
    finished_at = max((i.updated_at.timestamp() for i in items), default=started_at + run_s)
    elapsed = finished_at - started_at
    await graph.aclose_all()
    engine.dispose()
    if state != "completed":
        raise SystemExit(f"the conversion ended {state}")
    return done, elapsed, timing


def run_sequential(url: str, sample: int) -> tuple[int, float]:
    """One request at a time: create Eligible, then remove Active, item after item."""
    state = httpx.get(url + "/_sim/state", timeout=60).json()
    break_glass = set(httpx.get(url + "/_sim/profile", timeout=30).json()["break_glass_ids"])
    todo = [
        a
        for a in state["active_assignments"]
        if a["role_definition_id"] in TARGET_ROLES
        and a["principal_type"] == "user"
        and a["principal_id"] not in break_glass
    ][:sample]
    headers = {"Authorization": "Bearer bench"}
    base = url + "/v1.0/roleManagement/directory"
    started = time.perf_counter()
    with httpx.Client(headers=headers, timeout=30) as client:
        for a in todo:
            body = {
                "principalId": a["principal_id"],
                "roleDefinitionId": a["role_definition_id"],
                "directoryScopeId": "/",
                "justification": "bench",
            }
            for kind, action, extra in (
                (
                    "roleEligibilityScheduleRequests",
                    "adminAssign",
                    {"scheduleInfo": {"expiration": {"type": "noExpiration"}}},
                ),
                ("roleAssignmentScheduleRequests", "adminRemove", {}),
            ):
                while True:
                    response = client.post(
                        f"{base}/{kind}", json={**body, "action": action, **extra}
                    )
                    if response.status_code != 429:
                        break
                    time.sleep(float(response.headers.get("Retry-After", "1")))
    return len(todo), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", type=int, default=2000)
    parser.add_argument("--write-quota", type=int, default=200, help="W, writes per second")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--baseline-sample", type=int, default=100)
    args = parser.parse_args()
    configure_logging("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tenant_file = workdir / "tenant.json"
        build_tenant_file(tenant_file, args.assignments)

        url, process = start_sim(tenant_file, args.latency_ms, args.write_quota)
        try:
            done, elapsed, timing = asyncio.run(run_engine(url, args.write_quota, workdir))
            stats = httpx.get(url + "/_sim/requests", timeout=30).json()
        finally:
            stop(process)

        url, process = start_sim(tenant_file, args.latency_ms, args.write_quota)
        try:
            base_done, base_elapsed = run_sequential(url, args.baseline_sample)
        finally:
            stop(process)

    rate = done / elapsed
    ceiling = args.write_quota / 2
    baseline = base_done / base_elapsed
    summary = {
        "assignments": done,
        "seconds": round(elapsed, 2),
        "write_quota_per_s": args.write_quota,
        "latency_ms": args.latency_ms,
        "baseline_per_s": round(baseline, 2),
        "requests": stats["total"],
        **timing,
    }
    print(json.dumps(summary))
    print(
        f"conversions_per_s={rate:.1f} ceiling_ratio={rate / ceiling:.3f} "
        f"speedup={rate / baseline:.1f} throttled={stats['throttled']}"
    )


if __name__ == "__main__":
    main()
