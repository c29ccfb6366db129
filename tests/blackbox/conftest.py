"""Black-box rig: the product the way it runs, driven over HTTP only.

A standalone simulated tenant (``pim-rollout simulate-tenant``) and ``pim-rollout serve`` each
run in their own process on loopback, on a fresh SQLite file or a fresh PostgreSQL database.
An ``Operator`` drives a plan through the public API as a person would (start, advance the
manual gates, retry, roll back); ``run_pollers`` adds a crowd of dashboards reading the plan,
its history, the health and metrics endpoints and two admin UI pages while it runs.

Every wait is bounded; a failure names the last plan JSON and the tail of the serve log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import httpx
import psycopg
import pytest

from tests.conftest import DATABASES, PG_ADMIN_URL
from tests.engine.helpers import no_lockout
from tests.factories import ROOT, plan_data
from tests.invariants.conftest import Sim, free_port, start_sim

# A request slower than this counts as failed (and is cut off there).
REQUEST_TIMEOUT_S = 10.0
POLL_PAUSE_S = (0.5, 1.5)
"""A dashboard's pause between two requests: 50 of them ask for about 50 pages a second, half
of what ``serve`` answers on two cores alongside the engine, so the engine is not starved."""
# Plan actions (start runs preflight and takes the baseline) may legitimately take longer.
ACTION_TIMEOUT_S = 120.0
# What a healthy serve log never contains.
FORBIDDEN_LOG = (
    "database is locked",
    "QueuePool limit",
    "plan_error",
    "record_failure_failed",
    "lease_release_failed",
    "Traceback",
)
LOG_TAIL_LINES = 25


# --------------------------------------------------------------------------- databases


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}".replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=[pytest.param(db, id=db) for db in DATABASES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, private to one test; ``serve`` migrates it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'soak.db'}"
        return
    name = f"soak_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- processes


def service_env(database_url: str, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of ``serve`` and the CLI: nothing of the caller's ``PIM_ROLLOUT_*``
    (the settings loader refuses unknown ones, such as the test suite's own)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIM_ROLLOUT_")}
    env.update(
        {
            "PIM_ROLLOUT_DATABASE_URL": database_url,
            "PIM_ROLLOUT_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
            "PIM_ROLLOUT_SCHEDULER__TICK_SECONDS": "1",
            "PIM_ROLLOUT_LOG_FORMAT": "json",
            # Any callback that blocks serve's loop is logged (loop.blocked) with its stack.
            "PIM_ROLLOUT_LOOP_WATCHDOG_MS": "100",
            "PIM_ROLLOUT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def create_token(env: Mapping[str, str], role: str = "admin", name: str = "soak") -> str:
    """``pim-rollout tokens create``: the token is the last line of its output."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "tokens", "create", "--role", role, "--name", name],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"tokens create exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return lines[-1].strip()


@dataclass
class Serve:
    """``pim-rollout serve`` on a fixed port; stdout and stderr go to ``log_path``."""

    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, within: float = 90.0) -> float:
        """Start and wait until ``/healthz`` answers 200; returns the seconds it took."""
        assert not self.running, "serve is already running"
        began = time.monotonic()
        process = self.process = self._spawn()
        self.starts += 1
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                code = process.poll()
                if code is not None:
                    raise RuntimeError(f"serve exited with {code} at start:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + "/healthz")).status_code == 200:
                        return time.monotonic() - began
                if time.monotonic() - began > within:
                    raise RuntimeError(
                        f"serve did not answer /healthz within {within:g} s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL: no shutdown handlers, no lease release, nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def stop(self) -> bool:
        """SIGTERM, as a supervisor stops it; False if it had to be killed after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            return False
        return True

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join(line[:400] for line in tail)

    def forbidden_lines(self) -> list[str]:
        return [
            line
            for line in self.log_text().splitlines()
            if any(pattern in line for pattern in FORBIDDEN_LOG)
        ]

    def forbidden_report(self, examples: int = 6) -> str:
        """Empty when the log is clean; else counts by pattern and the first few lines."""
        hits = self.forbidden_lines()
        if not hits:
            return ""
        counts = Counter(p for line in hits for p in FORBIDDEN_LOG if p in line)
        shown = "\n".join(f"  {line[:700]}" for line in hits[:examples])
        return (
            f"serve log ({self.log_path}): {len(hits)} line(s) with forbidden text: "
            + ", ".join(f"{p!r}={n}" for p, n in counts.most_common())
            + f"\nfirst lines:\n{shown}"
        )


class _StderrDrain:
    """Reads the simulator's stderr pipe so it can never fill up and stall the tenant."""

    def __init__(self, sim: Sim) -> None:
        self.lines: deque[str] = deque(maxlen=200)
        self._stream = sim.process.stderr
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._stream is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for raw in self._stream:
                self.lines.append(raw.decode(errors="replace").rstrip())

    def close(self) -> None:
        self._thread.join(timeout=10)
        if self._stream is not None:
            self._stream.close()


def _stop_sim(sim: Sim, drain: _StderrDrain) -> None:
    if sim.process.poll() is None:
        sim.process.send_signal(signal.SIGTERM)
        try:
            sim.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait(timeout=30)
    drain.close()


@dataclass
class BlackBox:
    sim: Sim
    serve: Serve
    token: str
    tmp_path: Path
    sim_stderr: deque[str] = field(default_factory=deque)

    def api(self, timeout: float = ACTION_TIMEOUT_S) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.serve.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    async def sim_json(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.sim.url, timeout=60) as client:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            return response.json()

    async def timeline_seq(self) -> int:
        timeline = await self.sim_json("GET", "/_sim/timeline")
        return max((int(e["seq"]) for e in timeline), default=0)

    async def ui_cookies(self) -> httpx.Cookies:
        """Sign in to the admin UI with the token, as a browser does; the session cookie."""
        async with httpx.AsyncClient(base_url=self.serve.url, timeout=30) as client:
            page = await client.get("/ui/login")
            match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert match, f"no CSRF token on the login page ({page.status_code}): {page.text[:500]}"
            response = await client.post(
                "/ui/login", data={"token": self.token, "csrf_token": match.group(1)}
            )
            assert response.status_code == 303, (response.status_code, response.text[:1000])
            check = await client.get("/ui/plans")
            assert check.status_code == 200, f"UI sign-in did not stick: {check.status_code}"
            return httpx.Cookies(client.cookies)


class Launch(Protocol):
    def __call__(
        self, *sim_args: str, env: Mapping[str, str] | None = None
    ) -> Awaitable[BlackBox]: ...


@pytest.fixture(autouse=True)
def _frozen_heap() -> Iterator[None]:
    """The test process's heap as it stands is left out of garbage collection while the test
    runs: a worker that ran hundreds of tests holds millions of objects, and a full collection
    of them stops this process's loop for seconds, which would read as the service's latency."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
async def launch(database_url: str, tmp_path: Path) -> AsyncIterator[Launch]:
    """Start a simulated tenant with ``sim_args`` and ``serve`` on the test's database.

    Everything started is stopped at teardown (SIGTERM, then SIGKILL), whatever happened.
    """
    # Blocking work (starting the tenant, the CLI, waiting for exits) runs in threads, so the
    # test's event loop, which also runs the pollers, is never held up by the harness.
    async with contextlib.AsyncExitStack() as cleanup:

        async def _launch(*sim_args: str, env: Mapping[str, str] | None = None) -> BlackBox:
            sim = await asyncio.to_thread(start_sim, *sim_args)
            drain = _StderrDrain(sim)
            cleanup.push_async_callback(asyncio.to_thread, _stop_sim, sim, drain)
            port = free_port()
            serve_env = service_env(database_url, tmp_path, port, **dict(env or {}))
            token = await asyncio.to_thread(create_token, serve_env)
            serve = Serve(port=port, env=serve_env, log_path=tmp_path / "serve.log")
            cleanup.push_async_callback(asyncio.to_thread, serve.stop)
            await serve.start()
            return BlackBox(sim, serve, token, tmp_path, drain.lines)

        yield _launch


@pytest.fixture
def say(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Write a line to the terminal even when output is captured (timings, load figures)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def _say(message: str) -> None:
        if reporter is None:
            return
        suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with suspended:
            reporter.write_line(f"\n[{request.node.name}] {message}")

    return _say


# --------------------------------------------------------------------------- load


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class LoadStats:
    """Every poller request: latency by endpoint, failures by kind, the first few failures."""

    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    client_lag: float = 0.0
    """The longest this process's own loop came late to a timer: time the pollers could not
    have measured the service."""
    client_lag_at: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def record(self, label: str, elapsed: float, failure: str | None, detail: str = "") -> None:
        self.latencies.setdefault(label, []).append(elapsed)
        if failure is None:
            self.ok += 1
            return
        self.failures[f"{failure} on {label}"] += 1
        if len(self.examples) < 8:
            at = time.monotonic() - self.started
            self.examples.append(
                f"t+{at:.1f}s {label}: {failure} after {elapsed:.2f}s {detail}".rstrip()
            )

    def summary(self) -> str:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in self.failures.most_common()) or "none"
        lines = [
            f"pollers: {self.total} requests, {self.failed} failed ({kinds}); the test "
            f"process's own loop came at most {self.client_lag * 1000:.0f} ms late "
            f"(t+{self.client_lag_at:.1f}s)"
        ]
        for label, values in sorted(self.latencies.items()):
            lines.append(
                f"  {label:9} n={len(values):5} p50={percentile(values, 0.5) * 1000:7.0f}ms "
                f"p99={percentile(values, 0.99) * 1000:7.0f}ms max={max(values) * 1000:7.0f}ms"
            )
        if self.examples:
            lines.append("  first failures:")
            lines += [f"    {e}" for e in self.examples]
        return "\n".join(lines)


def poll_targets(plan_id: str) -> list[tuple[str, str]]:
    return [
        ("plan", f"/api/v1/plans/{plan_id}"),
        ("history", f"/api/v1/plans/{plan_id}/history"),
        ("healthz", "/healthz"),
        ("metrics", "/metrics"),
        ("ui_plan", f"/ui/plans/{plan_id}"),
        ("ui_live", f"/ui/plans/{plan_id}/live"),
    ]


async def _watch_client_loop(stats: LoadStats, stop: asyncio.Event, tick: float = 0.05) -> None:
    """How late this process's loop wakes up: a stall here delays every poller's reading."""
    while not stop.is_set():
        due = time.monotonic() + tick
        await asyncio.sleep(tick)
        late = time.monotonic() - due
        if late > stats.client_lag:
            stats.client_lag, stats.client_lag_at = late, time.monotonic() - stats.started


async def _poll(
    client: httpx.AsyncClient,
    targets: list[tuple[str, str]],
    first: int,
    stop: asyncio.Event,
    stats: LoadStats,
    rng: random.Random,
) -> None:
    index = first
    while not stop.is_set():
        label, path = targets[index % len(targets)]
        index += 1
        began = time.monotonic()
        try:
            response = await client.get(path)
        except httpx.TimeoutException as exc:
            stats.record(label, time.monotonic() - began, "timeout", type(exc).__name__)
        except httpx.HTTPError as exc:
            stats.record(
                label, time.monotonic() - began, f"transport {type(exc).__name__}", str(exc)
            )
        else:
            elapsed = time.monotonic() - began
            status = response.status_code
            if status >= 500:
                stats.record(label, elapsed, f"{status}", response.text[:300].replace("\n", " "))
            elif status >= 300:
                # 3xx here means the UI session was lost; 4xx a harness or auth problem.
                stats.record(label, elapsed, f"unexpected {status}", response.text[:200])
            elif elapsed > REQUEST_TIMEOUT_S:
                stats.record(label, elapsed, "slow")
            else:
                stats.record(label, elapsed, None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(*POLL_PAUSE_S))


@contextlib.asynccontextmanager
async def run_pollers(
    box: BlackBox, plan_id: str, clients: int, *, seed: int = 1
) -> AsyncIterator[LoadStats]:
    """``clients`` concurrent clients, each with its own connection, polling until the block
    ends; the UI session cookie is signed in once and shared."""
    cookies = await box.ui_cookies()
    stats = LoadStats()
    stop = asyncio.Event()
    targets = poll_targets(plan_id)
    rng = random.Random(seed)
    # One TLS context for all (each client would otherwise load the CA bundle, on the loop),
    # though the service answers plain HTTP on loopback.
    tls = ssl.create_default_context()
    pool = [
        httpx.AsyncClient(
            base_url=box.serve.url,
            verify=tls,
            headers={"Authorization": f"Bearer {box.token}"},
            cookies=cookies,
            timeout=REQUEST_TIMEOUT_S,
            follow_redirects=False,
        )
        for _ in range(clients)
    ]
    tasks = [
        asyncio.create_task(_poll(client, targets, i, stop, stats, random.Random(rng.random())))
        for i, client in enumerate(pool)
    ]
    tasks.append(asyncio.create_task(_watch_client_loop(stats, stop)))
    try:
        yield stats
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                stats.record("harness", 0.0, f"poller crashed {type(result).__name__}", str(result))
        for client in pool:
            await client.aclose()


# --------------------------------------------------------------------------- the operator


def manual_gate(plan: dict[str, Any]) -> str | None:
    """The phase an operator may advance now (``advance`` refuses while a phase runs)."""
    if plan["state"] != "running" or any(p["state"] == "running" for p in plan["phases"]):
        return None
    return next(
        (
            p["key"]
            for p in plan["phases"]
            if p["state"] == "awaiting_gate" and p["gate"] == "manual"
        ),
        None,
    )


def phases_brief(plan: dict[str, Any] | None) -> str:
    if plan is None:
        return "(no plan read yet)"
    parts = []
    for p in plan["phases"]:
        progress = p["progress"]
        parts.append(
            f"{p['key']}={p['state']}(done {progress['done']}/{progress['total']}, "
            f"failed {progress['failed']}, remaining {progress['remaining']})"
        )
    return f"plan {plan['state']} v{plan['version']}: " + ", ".join(parts)


PlanHook = Callable[[dict[str, Any]], Awaitable[bool]]
AdvanceHook = Callable[[str], Awaitable[None]]


DEMO_PHASE_GAP_S = 4
"""The shipped demo plan starts its phases 20 s apart, for a person to watch; the tests wait
for the work, not the clock, and a phase whose time has come still waits for the one before."""


def demo_plan(phase_gap_seconds: int) -> dict[str, Any]:
    """The shipped demo plan as an inline spec, phase ``i`` starting ``i * gap`` after the start."""
    spec = plan_data("demo")
    for index, phase in enumerate(spec["phases"]):
        phase["starts_after"] = f"PT{index * phase_gap_seconds}S"
    return spec


class Operator:
    """Drives one plan through the public API with bounded waits, like a person would."""

    def __init__(
        self,
        box: BlackBox,
        client: httpx.AsyncClient,
        *,
        deadline: float,
        context: Callable[[], str] | None = None,
    ) -> None:
        self.box = box
        self.client = client
        self.deadline = deadline
        self.context = context
        self.last_plan: dict[str, Any] | None = None
        self.read_errors: list[str] = []  # GETs of the plan that failed (kills make some)
        self.actions: list[str] = []
        self.started = time.monotonic()

    def fail(self, message: str) -> NoReturn:
        parts = [
            message,
            f"last plan: {phases_brief(self.last_plan)}",
            "last plan JSON: " + json.dumps(self.last_plan, default=str)[:4000],
            "actions: " + "; ".join(self.actions[-20:]),
        ]
        if self.read_errors:
            parts.append(
                f"plan reads that failed ({len(self.read_errors)}): {self.read_errors[:5]}"
            )
        if self.context is not None:
            parts.append(self.context())
        log_problems = self.box.serve.forbidden_report()
        if log_problems:
            parts.append(log_problems)
        parts.append(f"serve log tail:\n{self.box.serve.log_tail()}")
        if self.box.sim_stderr:
            parts.append("simulator stderr tail:\n" + "\n".join(list(self.box.sim_stderr)[-20:]))
        pytest.fail("\n\n".join(parts), pytrace=False)

    def _elapsed(self) -> str:
        return f"t+{time.monotonic() - self.started:.1f}s"

    async def call(
        self, method: str, path: str, *, body: Any = None, expect: set[int] | None = None
    ) -> httpx.Response:
        expect = expect or {200}
        began = time.monotonic()
        error: httpx.HTTPError | None = None
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            error = exc
        if error is not None:  # failed outside the except block: no chained traceback
            self.fail(f"{method} {path} failed after {time.monotonic() - began:.1f}s: {error!r}")
        if response.status_code not in expect:
            self.fail(
                f"{method} {path} answered {response.status_code} after "
                f"{time.monotonic() - began:.1f}s: {response.text[:3000]}"
            )
        return response

    async def create_plan(
        self, *, name: str = "Soak", phase_gap_seconds: int = DEMO_PHASE_GAP_S
    ) -> str:
        """A tenant for the simulated one, and the demo plan on it, its phases
        ``phase_gap_seconds`` apart."""
        profile = await self.box.sim_json("GET", "/_sim/profile")
        tenant = (
            await self.call(
                "POST",
                "/api/v1/tenants",
                body={
                    **profile,
                    "name": name,
                    "graph_base_url": self.box.sim.url + "/v1.0",
                    "auth": {"kind": "none"},
                    # The simulated tenant is started with --min-change-interval 0.
                    "graph_limits": {"min_change_interval_seconds": 0},
                },
                expect={201},
            )
        ).json()
        plan = (
            await self.call(
                "POST",
                "/api/v1/plans",
                body={"tenant_id": tenant["id"], "spec": demo_plan(phase_gap_seconds)},
                expect={201},
            )
        ).json()
        self.last_plan = plan
        return str(plan["id"])

    async def act(
        self, plan_id: str, action: str, body: dict[str, Any] | None = None, *, refused_ok: bool
    ) -> httpx.Response:
        """POST an action; 200 or 202 (then we poll anyway). A 409 is a race with the engine
        when ``refused_ok`` (the next read shows what happened)."""
        began = time.monotonic()
        expect = {200, 202} | ({409} if refused_ok else set())
        response = await self.call(
            "POST", f"/api/v1/plans/{plan_id}/{action}", body=body or {}, expect=expect
        )
        self.actions.append(
            f"{self._elapsed()} {action}{' ' + json.dumps(body) if body else ''} -> "
            f"{response.status_code} in {time.monotonic() - began:.2f}s"
        )
        if response.status_code == 202:
            await self.wait_for_job(response, f"{action} {body or ''}")
        elif response.status_code == 200:
            with contextlib.suppress(ValueError):
                answer = response.json()
                if isinstance(answer, dict) and "phases" in answer:
                    self.last_plan = answer
        return response

    async def wait_for_job(self, accepted: httpx.Response, what: str) -> None:
        """Follow a ``202 Accepted`` to its job until it ends; a failed job fails the test."""
        try:
            body = accepted.json()
        except ValueError:
            body = {}
        href = accepted.headers.get("location") or (
            body.get("href") if isinstance(body, dict) else None
        )
        if not href:
            return  # nothing to follow: the plan reads tell the story
        job: dict[str, Any] = body if isinstance(body, dict) else {}
        while job.get("state", "running") == "running":
            if time.monotonic() > self.deadline:
                self.fail(f"the job of {what} ({href}) did not end: {job}")
            await asyncio.sleep(0.5)
            try:
                response = await self.client.get(href, timeout=30)
            except httpx.HTTPError as exc:
                self.read_errors.append(f"{self._elapsed()} job {href}: {exc!r}")
                continue
            if response.status_code != 200:
                self.read_errors.append(f"{self._elapsed()} job {href}: {response.status_code}")
                continue
            job = response.json()
        self.actions.append(f"{self._elapsed()} job of {what} {job.get('state')}")
        if job.get("state") != "succeeded":
            self.fail(f"the job of {what} ended {job.get('state')}: {job.get('problem')}")

    async def read_plan(self, plan_id: str) -> dict[str, Any] | None:
        """The plan, or None when the read failed (recorded; the caller tries again)."""
        try:
            response = await self.client.get(f"/api/v1/plans/{plan_id}", timeout=30)
        except httpx.HTTPError as exc:
            self.read_errors.append(f"{self._elapsed()} {exc!r}")
            return None
        if response.status_code != 200:
            self.read_errors.append(
                f"{self._elapsed()} {response.status_code} {response.text[:300]}"
            )
            return None
        plan: dict[str, Any] = response.json()
        self.last_plan = plan
        return plan

    async def drive(
        self,
        plan_id: str,
        goal: str,
        *,
        again: str | None = None,
        operator_retries: int = 0,
        poll_seconds: float = 0.5,
        on_plan: PlanHook | None = None,
        after_advance: AdvanceHook | None = None,
    ) -> dict[str, Any]:
        """Poll until the plan is ``goal``: advance manual gates; when the plan fails, send
        ``again`` (retry / rollback) at most ``operator_retries`` times."""
        retries = 0
        while True:
            if time.monotonic() > self.deadline:
                self.fail(f"the plan did not reach {goal!r} before the test's deadline")
            plan = await self.read_plan(plan_id)
            if plan is None:
                await asyncio.sleep(poll_seconds)
                continue
            if on_plan is not None and await on_plan(plan):
                continue
            state = plan["state"]
            if state == goal:
                return plan
            if state == "failed":
                reasons = [plan.get("status_reason")] + [
                    f"{p['key']}: {p['status_reason']}"
                    for p in plan["phases"]
                    if p["state"] == "failed"
                ]
                if again is None or retries >= operator_retries:
                    self.fail(
                        f"the plan failed on the way to {goal!r} "
                        f"(after {retries} operator {again or 'retries'}): {reasons}"
                    )
                retries += 1
                self.actions.append(f"{self._elapsed()} failed: {reasons}")
                await self.act(
                    plan_id, again, {"reason": "transient faults: again"}, refused_ok=True
                )
                continue
            if state in {"completed", "rolled_back", "cancelled"}:
                self.fail(f"the plan ended {state!r} while waiting for {goal!r}")
            gate = manual_gate(plan)
            if gate is not None:
                response = await self.act(
                    plan_id,
                    "advance",
                    {"phase": gate, "reason": "feedback is in"},
                    refused_ok=True,
                )
                if response.status_code != 409 and after_advance is not None:
                    await after_advance(gate)
                continue
            await asyncio.sleep(poll_seconds)

    async def operations(self, plan_id: str) -> list[dict[str, Any]]:
        """The whole journal, page by page."""
        entries: list[dict[str, Any]] = []
        for _ in range(1000):
            page = (
                await self.call(
                    "GET", f"/api/v1/plans/{plan_id}/operations?limit=1000&offset={len(entries)}"
                )
            ).json()
            entries += page
            if len(page) < 1000:
                return entries
        self.fail("the journal did not end after 1,000 pages")


# --------------------------------------------------------------------------- the tenant


Holding = tuple[str, str, str, str]


def holdings(state: dict[str, Any]) -> set[Holding]:
    """Every assignment of the simulated tenant as (principal, role, kind, scope)."""
    return {
        (a["principal_id"], a["role_definition_id"], a["kind"], a["directory_scope_id"])
        for a in [*state["active_assignments"], *state["eligible_assignments"]]
    }


def holdings_diff(before: set[Holding], after: set[Holding], examples: int = 5) -> str:
    missing, extra = sorted(before - after), sorted(after - before)
    if not missing and not extra:
        return ""
    return (
        f"the tenant differs from the baseline: {len(missing)} assignment(s) missing, "
        f"{len(extra)} extra; missing e.g. {missing[:examples]}; extra e.g. {extra[:examples]}"
    )


def lockouts(baseline: dict[str, Any], timeline: list[dict[str, Any]]) -> list[str]:
    """Instants at which someone who held a role (either kind) at the baseline held it neither
    way. The timeline is replayed on top of the baseline's holdings."""
    held = holdings(baseline)
    seeded = [
        {"principal_id": p, "role_definition_id": r, "kind": kind, "change": "added"}
        for p, r, kind, _ in sorted(held)
    ]
    return no_lockout(seeded + timeline, {(p, r) for p, r, _, _ in held})
