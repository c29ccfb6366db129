"""API latency under load while a plan converts, against a bare FastAPI app as the floor.

Starts the standalone simulated tenant (40 ms per request, a tenant big enough that the demo
plan's conversions take a while) and ``pim-rollout serve`` on SQLite (or PostgreSQL), each in
its own process; creates a tenant and a plan from the ``demo`` template, starts it (advancing
its manual gates), and while a phase converts sends a fixed number of requests from 20 and then
50 concurrent clients, alternating GET /api/v1/plans/{id} and GET /healthz. Then the same load
goes to a bare FastAPI app (one ``GET /ping``) served by uvicorn in its own process.

    python bench/api_load.py [--clients 20,50] [--requests 2000] [--latency-ms 40]
                             [--database sqlite|postgresql] [--keep-logs DIR]

A request fails on a transport error, a 5xx, or after 10 s. The last line is
``plan_p99_ms=… bare_p99_ms=… p99_ratio=… failed=…`` for the largest client count, where
``failed`` counts the plan service's failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 10.0
# One client count's load stops issuing requests after this long (a wedged service would
# otherwise take requests / clients x 10 s); the unsent ones are reported.
LOAD_BUDGET_S = 180.0
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FORBIDDEN_LOG = (
    "database is locked",
    "QueuePool limit",
    "plan_error",
    "record_failure_failed",
    "lease_release_failed",
    "Traceback",
)

# The floor: what uvicorn + FastAPI answer with nothing behind them.
# Served with ``python -m uvicorn bench.api_load:bare_app``.
bare_app = FastAPI()


@bare_app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log_path)


def wait_ready(process: Process, url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout:g} s")


def service_env(database_url: str, tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIM_ROLLOUT_")}
    env.update(
        {
            "PIM_ROLLOUT_DATABASE_URL": database_url,
            "PIM_ROLLOUT_SECRET_KEY_FILE": str(tmp / "secret.key"),
            "PIM_ROLLOUT_SCHEDULER__TICK_SECONDS": "1",
            "PIM_ROLLOUT_LOG_FORMAT": "json",
            "PIM_ROLLOUT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def create_token(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "tokens", "create", "--role", "admin", "--name", "bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"tokens create failed:\n{result.stdout}\n{result.stderr}")
    return lines[-1].strip()


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Any:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- load


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    unsent: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def line(self) -> str:
        kinds = ",".join(f"{k}:{n}" for k, n in self.failures.most_common())
        unsent = (
            f" unsent={self.unsent} (over the {LOAD_BUDGET_S:g} s budget)" if self.unsent else ""
        )
        return (
            f"n={len(self.latencies)} p50={self.ms(0.5):.1f}ms p99={self.ms(0.99):.1f}ms "
            f"max={max(self.latencies, default=math.nan) * 1000:.1f}ms "
            f"rps={len(self.latencies) / self.seconds if self.seconds else 0:.0f} "
            f"failed={self.failed}{' (' + kinds + ')' if kinds else ''}{unsent}"
        )


async def load(
    base_url: str, paths: list[str], clients: int, requests: int, headers: dict[str, str]
) -> Result:
    """``requests`` GETs from ``clients`` concurrent clients, back to back, cycling ``paths``."""
    result = Result()
    issued = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() - load_began < LOAD_BUDGET_S:
            path = paths[issued % len(paths)]
            issued += 1
            began = time.perf_counter()
            failure: str | None = None
            try:
                response = await client.get(path)
            except httpx.TimeoutException:
                failure = "timeout"
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            else:
                if response.status_code >= 500:
                    failure = str(response.status_code)
                elif response.status_code >= 300:
                    failure = f"unexpected {response.status_code}"
            elapsed = time.perf_counter() - began
            if failure is None and elapsed > REQUEST_TIMEOUT_S:
                failure = "slow"
            if failure is not None:
                result.failures[failure] += 1
            result.latencies.append(elapsed)

    pool = [
        httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1),
        )
        for _ in range(clients)
    ]
    load_began = time.perf_counter()
    try:
        await asyncio.gather(*(client_loop(c) for c in pool))
    finally:
        result.seconds = time.perf_counter() - load_began
        result.unsent = requests - issued
        for client in pool:
            await client.aclose()
    return result


# --------------------------------------------------------------------------- the plan


def phases_brief(plan: dict[str, Any]) -> str:
    return ", ".join(
        f"{p['key']}={p['state']}({p['progress']['done']}/{p['progress']['total']})"
        for p in plan["phases"]
    )


async def read_plan(api: httpx.AsyncClient, plan_id: str) -> dict[str, Any] | str:
    """The plan, or why it could not be read (the service under test may be wedged)."""
    try:
        response = await api.get(f"/api/v1/plans/{plan_id}", timeout=REQUEST_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"unreadable ({exc!r})"
    if response.status_code != 200:
        return f"unreadable ({response.status_code} {response.text[:200]})"
    plan: dict[str, Any] = response.json()
    return plan


async def operate(api: httpx.AsyncClient, plan_id: str, stop: asyncio.Event) -> None:
    """Advance manual gates as they come, so the conversions keep going."""
    while not stop.is_set():
        plan = await read_plan(api, plan_id)
        if isinstance(plan, dict):
            running = any(p["state"] == "running" for p in plan["phases"])
            gate = next(
                (
                    p["key"]
                    for p in plan["phases"]
                    if p["state"] == "awaiting_gate" and p["gate"] == "manual"
                ),
                None,
            )
            if plan["state"] == "running" and gate and not running:
                with contextlib.suppress(httpx.HTTPError):
                    await api.post(f"/api/v1/plans/{plan_id}/advance", json={"phase": gate})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def describe(plan: dict[str, Any] | str) -> str:
    return plan if isinstance(plan, str) else f"{plan['state']}: {phases_brief(plan)}"


async def wait_converting(
    api: httpx.AsyncClient, plan_id: str, converting: set[str], min_remaining: int
) -> str:
    """Wait (at most 240 s) for a phase whose conversions have begun, with at least
    ``min_remaining`` items still to do (the pilot is small; ``all-admins`` is the long one):
    a phase that is running but still checking its health gates or creating its work items
    writes nothing to the tenant yet. Says what it saw."""
    deadline = time.monotonic() + 240
    plan: dict[str, Any] | str = "not read"
    while time.monotonic() < deadline:
        plan = await read_plan(api, plan_id)
        if isinstance(plan, dict):
            for phase in plan["phases"]:
                if (
                    phase["key"] in converting
                    and phase["state"] == "running"
                    and phase["progress"]["done"] > 0
                    and phase["progress"]["remaining"] >= min_remaining
                ):
                    return f"phase {phase['key']} is converting ({describe(plan)})"
            if plan["state"] in {"completed", "failed", "rolled_back", "cancelled"}:
                break
        await asyncio.sleep(0.5)
    return f"WARNING: no phase seen converting; loading anyway (last read: {describe(plan)})"


async def warm_up(base_url: str, paths: list[str], headers: dict[str, str]) -> None:
    await load(base_url, paths, 5, 100, headers)


async def bench_plan(
    serve_url: str,
    sim_url: str,
    token: str,
    clients: list[int],
    requests: int,
    min_remaining: int,
) -> dict[int, Result]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=serve_url, headers=headers, timeout=120) as api:
        profile = (await api.get(sim_url + "/_sim/profile")).json()
        tenant = await api.post(
            "/api/v1/tenants",
            json={
                **profile,
                "name": "Bench",
                "graph_base_url": sim_url + "/v1.0",
                "auth": {"kind": "none"},
                "graph_limits": {"min_change_interval_seconds": 0},
            },
        )
        tenant.raise_for_status()
        created = await api.post(
            "/api/v1/plans", json={"tenant_id": tenant.json()["id"], "template": "demo"}
        )
        created.raise_for_status()
        plan_id = created.json()["id"]
        template = (await api.get("/api/v1/plan-templates/demo")).json()
        converting = {p["key"] for p in template["phases"] if "convert_cohort" in p["steps"]}
        paths = [f"/api/v1/plans/{plan_id}", "/healthz"]
        await warm_up(serve_url, paths, headers)
        started = await api.post(f"/api/v1/plans/{plan_id}/start", json={"reason": "bench"})
        if started.status_code not in {200, 202}:
            raise RuntimeError(f"start answered {started.status_code}: {started.text[:2000]}")
        stop = asyncio.Event()
        operator = asyncio.create_task(operate(api, plan_id, stop))
        try:
            print(await wait_converting(api, plan_id, converting, min_remaining), flush=True)
            results: dict[int, Result] = {}
            for count in clients:
                results[count] = await load(serve_url, paths, count, requests, headers)
                plan = await read_plan(api, plan_id)
                print(
                    f"plan clients={count}: {results[count].line()}; after: {describe(plan)}",
                    flush=True,
                )
            return results
        finally:
            stop.set()
            await operator


async def bench_bare(url: str, clients: list[int], requests: int) -> dict[int, Result]:
    await warm_up(url, ["/ping"], {})
    results: dict[int, Result] = {}
    for count in clients:
        results[count] = await load(url, ["/ping"], count, requests, {})
        print(f"bare clients={count}: {results[count].line()}", flush=True)
    return results


def loop_blocks(log: str) -> str:
    """How often serve's loop was blocked, and where: the innermost frame of ours per stall."""
    stalls: Counter[str] = Counter()
    longest: dict[str, int] = {}
    for line in log.splitlines():
        if '"loop.blocked"' not in line:
            continue
        record = json.loads(line)
        ours = [f for f in FRAME.findall(record.get("stack", "")) if "/app/" in f[0]]
        where = f"{ours[-1][0].split('/app/')[-1]}:{ours[-1][1]} {ours[-1][2]}" if ours else "?"
        stalls[where] += 1
        longest[where] = max(longest.get(where, 0), int(record.get("blocked_ms", 0)))
    if not stalls:
        return "serve's loop was never blocked past the watchdog's threshold"
    rows = [f"  {n}x up to {longest[w]} ms at {w}" for w, n in stalls.most_common(10)]
    return "serve's loop was blocked:\n" + "\n".join(rows)


FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="20,50", help="client counts, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="requests per client count")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--admins", type=int, default=600)
    parser.add_argument(
        "--min-remaining",
        type=int,
        default=200,
        help="start loading once a phase converts with at least this many items to do",
    )
    parser.add_argument(
        "--watchdog-ms",
        type=float,
        default=0,
        help="run serve's loop watchdog at this threshold and summarise what blocked its loop",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the logs (and the SQLite file) here instead of a temporary directory",
    )
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    processes: list[Process] = []
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so the processes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="api-load-") as tmp_dir:
        work = Path(tmp_dir)
        if args.keep_logs is not None:
            work = args.keep_logs
            work.mkdir(parents=True, exist_ok=True)
        try:
            plan, floor = run(args, clients, work, processes)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"bench failed: {exc!r}", flush=True)
            for process in processes:
                print(f"--- {process.name} log tail ---\n{process.tail()}", flush=True)
            return 1
        finally:
            for process in reversed(processes):
                process.stop()
    for count in clients:
        print(f"clients={count}: plan {plan[count].line()} | bare {floor[count].line()}")
    top = max(clients)
    plan_p99, bare_p99 = plan[top].ms(0.99), floor[top].ms(0.99)
    print(
        f"plan_p99_ms={plan_p99:.1f} bare_p99_ms={bare_p99:.1f} "
        f"p99_ratio={plan_p99 / bare_p99:.1f} failed={plan[top].failed}"
    )
    return 0


def run(
    args: argparse.Namespace, clients: list[int], tmp: Path, processes: list[Process]
) -> tuple[dict[int, Result], dict[int, Result]]:
    """The plan service under load, then the bare app; every process goes into ``processes``
    (the caller stops them)."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PIM_ROLLOUT_")}
    with database(args.database, tmp) as database_url:
        sim_port = free_port()
        sim_args = ["-m", "app.cli", "simulate-tenant", "--port", str(sim_port)]
        sim_args += ["--users", str(args.users), "--admins", str(args.admins), "--seed", "3"]
        sim_args += ["--latency-ms", str(args.latency_ms), "--min-change-interval", "0"]
        sim = spawn("sim", sim_args, base_env, tmp)
        processes.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_ready(sim, sim_url + "/_sim/profile")

        serve_port = free_port()
        env = service_env(database_url, tmp, serve_port)
        if args.watchdog_ms:
            env["PIM_ROLLOUT_LOOP_WATCHDOG_MS"] = f"{args.watchdog_ms:g}"
        token = create_token(env)
        serve = spawn("serve", ["-m", "app.cli", "serve", "--port", str(serve_port)], env, tmp)
        processes.append(serve)
        serve_url = f"http://127.0.0.1:{serve_port}"
        wait_ready(serve, serve_url + "/healthz")
        print(
            f"database={args.database} users={args.users} admins={args.admins} "
            f"latency_ms={args.latency_ms:g} requests={args.requests} clients={clients}",
            flush=True,
        )
        plan = asyncio.run(
            bench_plan(serve_url, sim_url, token, clients, args.requests, args.min_remaining)
        )
        serve.stop()
        sim.stop()
        log = serve.log_path.read_text(errors="replace")
        lines = [line for line in log.splitlines() if any(p in line for p in FORBIDDEN_LOG)]
        hits = Counter(p for line in lines for p in FORBIDDEN_LOG if p in line)
        print(
            "serve log (stopped mid-conversion): "
            + (", ".join(f"{p!r}={n}" for p, n in hits.most_common()) or "clean"),
            flush=True,
        )
        for line in lines[:3]:
            print(f"  {line[:400]}", flush=True)
        if args.watchdog_ms:
            print(loop_blocks(log), flush=True)

    bare_port = free_port()
    bare_args = ["-m", "uvicorn", "bench.api_load:bare_app", "--port", str(bare_port)]
    bare = spawn("bare", [*bare_args, "--log-level", "warning"], base_env, tmp)
    processes.append(bare)
    bare_url = f"http://127.0.0.1:{bare_port}"
    wait_ready(bare, bare_url + "/ping")
    floor = asyncio.run(bench_bare(bare_url, clients, args.requests))
    return plan, floor


if __name__ == "__main__":
    sys.exit(main())
