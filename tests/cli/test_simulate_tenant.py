"""``pim-rollout simulate-tenant``: a simulated tenant on a loopback port, and its bad arguments."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.factories import GA, ROOT

STARTUP_SECONDS = 20.0
GRAPH_HEADERS = {"Authorization": "Bearer any-token-at-all"}


def child_env() -> dict[str, str]:
    # The CLI refuses unknown PIM_ROLLOUT_* variables; the test runner's own ones stay out.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIM_ROLLOUT_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def simulated_tenant(tmp_path: Path, *extra: str) -> Iterator[tuple[str, float]]:
    """Start the CLI on a free port; yield its base URL and how long it took to answer."""
    port = free_port()
    log = tmp_path / f"sim-{port}.log"
    args = ["--port", str(port), "--users", "300", "--admins", "30", "--seed", "3", *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "simulate-tenant", *args],
            cwd=tmp_path,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"simulate-tenant exited with {process.returncode}: {log.read_text()}"
                )
            try:
                if httpx.get(f"{base}/_sim/profile", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - began > STARTUP_SECONDS:
                raise AssertionError(f"no answer within {STARTUP_SECONDS}s: {log.read_text()}")
            time.sleep(0.1)
        yield base, time.monotonic() - began
    finally:
        stop(process)
    assert process.returncode is not None


def sku_parts(base: str) -> set[str]:
    response = httpx.get(f"{base}/v1.0/subscribedSkus", headers=GRAPH_HEADERS, timeout=5)
    assert response.status_code == 200, response.text
    return {sku["skuPartNumber"] for sku in response.json()["value"]}


class TestServe:
    def test_serves_profile_and_graph_with_any_bearer_token(self, tmp_path: Path) -> None:
        with simulated_tenant(tmp_path) as (base, took):
            assert took < STARTUP_SECONDS
            profile = httpx.get(f"{base}/_sim/profile", timeout=5).json()
            assert len(profile["break_glass_ids"]) == 2
            assert {"it_platform_team", "security_team", "managers", "role_owners"} <= set(
                profile["bindings"]
            )
            assert profile["comms"]["sender"]

            roles = httpx.get(
                f"{base}/v1.0/roleManagement/directory/roleDefinitions",
                headers=GRAPH_HEADERS,
                timeout=5,
            )
            assert roles.status_code == 200, roles.text
            names = {r["id"]: r["displayName"] for r in roles.json()["value"]}
            assert names[GA] == "Global Administrator"

            other = httpx.get(
                f"{base}/v1.0/roleManagement/directory/roleDefinitions",
                headers={"Authorization": "Bearer something-else"},
                timeout=5,
            )
            assert other.status_code == 200
            anonymous = httpx.get(
                f"{base}/v1.0/roleManagement/directory/roleDefinitions", timeout=5
            )
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"

            state = httpx.get(f"{base}/_sim/state", timeout=10).json()
            assert len(state["users"]) == 300
            assert state["p2"] is True
            assert "AAD_PREMIUM_P2" in sku_parts(base)

    def test_no_p2_leaves_the_licence_out(self, tmp_path: Path) -> None:
        with simulated_tenant(tmp_path, "--no-p2") as (base, _):
            parts = sku_parts(base)
            assert "AAD_PREMIUM_P2" not in parts
            assert "AAD_PREMIUM" in parts
            assert httpx.get(f"{base}/_sim/state", timeout=10).json()["p2"] is False

    def test_same_seed_same_tenant(self, tmp_path: Path) -> None:
        with simulated_tenant(tmp_path) as (base, _):
            first = httpx.get(f"{base}/_sim/profile", timeout=5).json()
        with simulated_tenant(tmp_path) as (base, _):
            second = httpx.get(f"{base}/_sim/profile", timeout=5).json()
        assert first == second


class TestBadArguments:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--users", "-1"], "users (-1) must be at least admins + 8"),
            (["--admins", "2"], "admins must be at least 4"),
            (["--users", "many"], "Invalid value for '--users'"),
            (["--fault-rate", "2"], "--fault-rate:"),
            ([], "Missing option '--port'"),
        ],
    )
    def test_exits_non_zero_with_a_clear_message(self, args: list[str], message: str) -> None:
        port = [] if not args else ["--port", str(free_port())]
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "simulate-tenant", *port, *args],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
