"""The inventory of a large tenant against the paging lower bound, in the same run.

Starts the standalone simulated tenant (100,000 users, 69,000 admins: about 94,600 standing
role assignments, plus 20,000 eligibility schedules and 300 groups; 20 ms per request) and
``pim-rollout serve`` on SQLite (or PostgreSQL), each as its own process. Takes the inventory
through the API (``POST /api/v1/tenants/{id}/inventory`` with ``Prefer: wait=600``), and reads
the serve process's peak RSS. Then the lower bound: every page the inventory read (the
simulator's log of the requests it answered meanwhile), read again back to back by a bare httpx
client, the same first pages followed by their ``@odata.nextLink``, so with the same page
sizes. Last, two monitoring collections of the same tenant: the second has nothing new to read.

    python bench/inventory.py [--users 100000] [--admins 69000] [--eligibilities 20000]
                              [--groups 300] [--latency-ms 20] [--database sqlite|postgresql]
                              [--profile DIR] [--keep-logs DIR]

``--profile DIR`` records py-spy profiles of serve and of the simulator during the inventory.
The last line is ``assignments=… inventory_s=… bound_s=… bound_ratio=… peak_rss_mb=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_load import (  # noqa: E402
    Process,
    create_token,
    database,
    free_port,
    service_env,
    spawn,
    wait_ready,
)

INVENTORY_WAIT_S = 600


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--output", str(out), "--format", "speedscope"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


async def sim_json(sim_url: str, path: str, method: str = "GET") -> Any:
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.request(method, sim_url + path)
        response.raise_for_status()
        return response.json()


def first_pages(log: list[dict[str, Any]]) -> list[str]:
    """The GETs that started a collection (no ``$skiptoken``): the bound follows their links."""
    starts = []
    for entry in log:
        if entry["method"] != "GET" or entry["status"] != 200:
            continue
        names = {name.lower() for name, _ in parse_qsl(urlsplit(entry["url"]).query)}
        if "$skiptoken" not in names:
            starts.append(entry["url"])
    return starts


async def read_bound(starts: list[str]) -> tuple[int, float]:
    """Every page, one request at a time, following ``@odata.nextLink``: (pages, seconds)."""
    pages = 0
    headers = {"Authorization": "Bearer bench"}
    async with httpx.AsyncClient(headers=headers, timeout=120) as http:
        began = time.perf_counter()
        for url in starts:
            next_url: str | None = url
            while next_url:
                response = await http.get(next_url)
                response.raise_for_status()
                pages += 1
                next_url = response.json().get("@odata.nextLink")
        return pages, time.perf_counter() - began


async def take_inventory(
    serve_url: str, sim_url: str, token: str, serve: Process, sim: Process, profile: Path | None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=serve_url, headers=headers, timeout=900) as api:
        profile_body = await sim_json(sim_url, "/_sim/profile")
        tenant = await api.post(
            "/api/v1/tenants",
            json={
                **profile_body,
                "name": "Bench",
                "graph_base_url": sim_url + "/v1.0",
                "auth": {"kind": "none"},
            },
        )
        tenant.raise_for_status()
        tenant_id = tenant.json()["id"]
        await sim_json(sim_url, "/_sim/request-log", "DELETE")
        profilers = []
        if profile is not None:
            profilers = [
                start_profiler(serve.popen.pid, profile / "serve.speedscope.json"),
                start_profiler(sim.popen.pid, profile / "sim.speedscope.json"),
            ]
            await asyncio.sleep(1)  # py-spy attaches
        began = time.perf_counter()
        response = await api.post(
            f"/api/v1/tenants/{tenant_id}/inventory",
            headers={"Prefer": f"wait={INVENTORY_WAIT_S}"},
        )
        seconds = time.perf_counter() - began
        for profiler in profilers:
            stop_profiler(profiler)
        if response.status_code != 201:
            raise RuntimeError(f"inventory answered {response.status_code}: {response.text[:2000]}")
        log = (await sim_json(sim_url, "/_sim/request-log"))["requests"]
        statuses = Counter(entry["status"] for entry in log)
        return {
            "tenant_id": tenant_id,
            "items": response.json()["item_count"],
            "seconds": seconds,
            "log": log,
            "statuses": statuses,
            "rss_mb": peak_rss_mb(serve.popen.pid),
        }


async def collect_twice(serve_url: str, sim_url: str, token: str, tenant_id: str) -> list[int]:
    """Two monitoring collections back to back: the Graph requests each one sent."""
    headers = {"Authorization": f"Bearer {token}", "Prefer": f"wait={INVENTORY_WAIT_S}"}
    counts = []
    async with httpx.AsyncClient(base_url=serve_url, headers=headers, timeout=900) as api:
        for _ in range(2):
            before = (await sim_json(sim_url, "/_sim/requests"))["total"]
            response = await api.post(f"/api/v1/tenants/{tenant_id}/reports/collect")
            if response.status_code != 200:
                raise RuntimeError(
                    f"collect answered {response.status_code}: {response.text[:2000]}"
                )
            counts.append((await sim_json(sim_url, "/_sim/requests"))["total"] - before)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--admins", type=int, default=69_000)
    parser.add_argument("--eligibilities", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-collect", action="store_true", help="skip the monitoring part")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    processes: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="inventory-") as tmp_dir:
        work = Path(tmp_dir)
        if args.keep_logs is not None:
            work = args.keep_logs
            work.mkdir(parents=True, exist_ok=True)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        try:
            return run(args, work, processes)
        except (RuntimeError, httpx.HTTPError) as exc:
            print(f"bench failed: {exc!r}", flush=True)
            for process in processes:
                print(f"--- {process.name} log tail ---\n{process.tail()}", flush=True)
            return 1
        finally:
            for process in reversed(processes):
                process.stop()


def run(args: argparse.Namespace, work: Path, processes: list[Process]) -> int:
    with database(args.database, work) as database_url:
        sim_port = free_port()
        sim_args = ["-m", "app.cli", "simulate-tenant", "--port", str(sim_port), "--seed", "3"]
        sim_args += ["--users", str(args.users), "--admins", str(args.admins)]
        sim_args += ["--eligibilities", str(args.eligibilities), "--groups", str(args.groups)]
        sim_args += ["--latency-ms", str(args.latency_ms)]
        serve_port = free_port()
        env = service_env(database_url, work, serve_port)
        env["PIM_ROLLOUT_SCHEDULER__ENABLED"] = "false"
        env["PIM_ROLLOUT_MONITORING__ENABLED"] = "false"
        env["PIM_ROLLOUT_LOG_LEVEL"] = "WARNING"
        sim = spawn("sim", sim_args, {k: v for k, v in env.items() if "PIM" not in k}, work)
        processes.append(sim)
        token = create_token(env)
        serve = spawn("serve", ["-m", "app.cli", "serve", "--port", str(serve_port)], env, work)
        processes.append(serve)
        sim_url = f"http://127.0.0.1:{sim_port}"
        serve_url = f"http://127.0.0.1:{serve_port}"
        wait_ready(sim, sim_url + "/_sim/profile", timeout=600)
        wait_ready(serve, serve_url + "/healthz")
        print(
            f"database={args.database} users={args.users} admins={args.admins} "
            f"eligibilities={args.eligibilities} groups={args.groups} "
            f"latency_ms={args.latency_ms:g}",
            flush=True,
        )
        taken = asyncio.run(take_inventory(serve_url, sim_url, token, serve, sim, args.profile))
        log = taken["log"]
        starts = first_pages(log)
        pages, bound = asyncio.run(read_bound(starts))
        requests = len(log)
        print(
            f"inventory: {taken['items']} items in {taken['seconds']:.1f} s, {requests} Graph "
            f"requests ({dict(taken['statuses'])}), peak RSS {taken['rss_mb']:.0f} MiB; "
            f"bound: {pages} pages from {len(starts)} first pages in {bound:.1f} s",
            flush=True,
        )
        if pages != sum(1 for entry in log if entry["status"] == 200):
            print("WARNING: the bound read a different number of pages", flush=True)
        if not args.no_collect:
            full, incremental = asyncio.run(
                collect_twice(serve_url, sim_url, token, taken["tenant_id"])
            )
            print(f"incremental_requests={incremental} full_requests={full}", flush=True)
    print(
        f"assignments={taken['items']} inventory_s={taken['seconds']:.1f} bound_s={bound:.1f} "
        f"bound_ratio={taken['seconds'] / bound:.2f} peak_rss_mb={taken['rss_mb']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
