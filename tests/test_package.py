"""The built wheel is the whole product: install it, migrate, serve, and use it.

What a user does, in temporary folders: build a wheel of the project, install it into a fresh
virtual environment, and in an empty folder run ``pim-rollout migrate``, ``tokens create`` and
``serve``. The plan templates, the UI's pages and static files, the comms templates and the
migrations must all come from the installed package, never from the source tree or the
working directory.

The fresh environment reaches this environment's dependencies through a ``.pth`` file naming
its site-packages folder. Python does not read the ``.pth`` files of a folder named that way, so
this project's editable install stays out of it; the test checks that ``app`` is imported from
the new environment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import ROOT

# Folders of the package that hold files other than Python modules.
PACKAGE_DATA = ("app/rollout_plans", "app/templates", "app/migrations", "app/ui/static")
# What the wheel is built from: the project's metadata and the package.
BUILD_INPUTS = ("pyproject.toml", "README.md", "app")
COMMAND_TIMEOUT_S = 180
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "pim-rollout"


def _run(args: list[str | Path], *, env: Mapping[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that points Python at the source tree,
    and without the test suite's own ``PIM_ROLLOUT_*`` variables."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith("PIM_ROLLOUT_")
        and key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = base / "dist"
    # The build itself may use this environment as it is (a build tool found on PYTHONPATH).
    build_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIM_ROLLOUT_")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    try:
        _run(
            [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", source, "-w", dist],
            env=build_env,
            cwd=base,
        )
    except AssertionError as exc:
        pytest.fail(f"building the wheel failed (setuptools>=70.1 is a dev dependency):\n{exc}")
    (wheel,) = dist.glob("pim_rollout-*.whl")

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env=_clean_env(), cwd=base)
    target = Installed(wheel, venv)
    # pip runs against the new interpreter before it can see any other environment, so it
    # neither finds nor touches this environment's installation of the project.
    _run(
        [*pip, "--python", target.python, "install", "--no-deps", "--no-index", wheel],
        env=_clean_env(),
        cwd=base,
    )
    purelib = _run(
        [target.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        env=_clean_env(),
        cwd=base,
    ).strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return target


class TestWheel:
    def test_it_holds_every_data_file_of_the_package(self, installed: Installed) -> None:
        with zipfile.ZipFile(installed.wheel) as wheel:
            names = set(wheel.namelist())
        expected = {
            path.relative_to(ROOT).as_posix()
            for folder in PACKAGE_DATA
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert {"app/rollout_plans/default.yaml", "app/rollout_plans/demo.yaml"} <= expected
        assert sorted(expected - names) == []


@dataclass(frozen=True)
class Served:
    client: httpx.Client
    token: str
    folder: Path
    log_path: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[Served]:
    """``migrate``, ``tokens create`` and ``serve`` of the installed wheel, in an empty folder."""
    folder = tmp_path / "empty"
    folder.mkdir()
    port = _free_port()
    env = {
        **_clean_env(),
        "PIM_ROLLOUT_DATABASE_URL": f"sqlite:///{folder / 'pim-rollout.db'}",
        "PIM_ROLLOUT_SECRET_KEY_FILE": str(folder / "pim-rollout.key"),
        "PIM_ROLLOUT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PIM_ROLLOUT_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    where = _run([installed.python, "-c", "import app; print(app.__file__)"], env=env, cwd=folder)
    assert Path(where.strip()).is_relative_to(installed.venv), where

    _run([installed.cli, "migrate"], env=env, cwd=folder)
    created = _run(
        [installed.cli, "tokens", "create", "--role", "admin", "--name", "package test"],
        env=env,
        cwd=folder,
    )
    token = created.strip().splitlines()[-1].strip()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [installed.cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            began = time.monotonic()
            while True:
                if process.poll() is not None:
                    pytest.fail(f"serve exited {process.returncode}:\n{log_path.read_text()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - began > START_TIMEOUT_S:
                    pytest.fail(f"serve did not answer /healthz:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield Served(client, token, folder, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _tenant_body() -> dict[str, object]:
    """A tenant with every binding the packaged plans use; nothing here calls Graph."""
    return {
        "name": "Contoso",
        "graph_base_url": "http://127.0.0.1:9/v1.0",
        "auth": {"kind": "none"},
        "break_glass_ids": [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
        ],
        "bindings": {
            "it_platform_team": {"kind": "group", "id": "00000000-0000-4000-8000-000000000010"},
            "security_team": {"kind": "group", "id": "00000000-0000-4000-8000-000000000011"},
            "managers": {"kind": "group", "id": "00000000-0000-4000-8000-000000000012"},
            "role_owners": {
                "kind": "role_owners",
                "fallback": "00000000-0000-4000-8000-000000000013",
            },
            "security_team_mailbox": {"kind": "mailbox", "addresses": ["secops@contoso.test"]},
        },
        "comms": {
            "sender": "pim@contoso.test",
            "helpdesk": {"name": "Contoso Service Desk", "email": "desk@contoso.test"},
        },
    }


class TestInstalledProduct:
    def test_serves_templates_ui_and_comms_from_the_package(self, served: Served) -> None:
        client, token = served.client, served.token
        auth = {"Authorization": f"Bearer {token}"}

        templates = client.get("/api/v1/plan-templates", headers=auth)
        assert templates.status_code == 200, templates.text
        by_name = {t["name"]: t for t in templates.json()}
        assert {"default", "demo"} <= set(by_name)
        assert by_name["default"]["valid"], by_name["default"]

        tenant = client.post("/api/v1/tenants", headers=auth, json=_tenant_body())
        assert tenant.status_code == 201, tenant.text
        plan = client.post(
            "/api/v1/plans",
            headers=auth,
            json={"tenant_id": tenant.json()["id"], "template": "default", "name": "Rollout"},
        )
        assert plan.status_code == 201, plan.text
        plan_id = plan.json()["id"]

        preview = client.get(f"/api/v1/plans/{plan_id}/phases/pilot/comms/preview", headers=auth)
        assert preview.status_code == 200, preview.text
        comms = preview.json()
        assert "Contoso Service Desk" in comms["html"]
        assert "Contoso Service Desk" in comms["text"]

        login = client.get("/ui/login")
        assert login.status_code == 200, login.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf, login.text[:1000]
        signed_in = client.post("/ui/login", data={"token": token, "csrf_token": csrf.group(1)})
        assert signed_in.status_code == 303, signed_in.text[:1000]
        page = client.get(f"/ui/plans/{plan_id}")
        assert page.status_code == 200, page.text[:1000]
        assert "Rollout" in page.text
        new_plan = client.get("/ui/plans/new")
        assert new_plan.status_code == 200, new_plan.text[:1000]
        assert 'value="default"' in new_plan.text
        assert 'value="demo"' in new_plan.text
        css = client.get("/ui/static/ui.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")

        log = served.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]
        # The folder holds the database and the key file, nothing copied in.
        names = {p.name for p in served.folder.iterdir()}
        assert {"pim-rollout.db", "pim-rollout.key"} <= names
        assert {n for n in names if not n.startswith("pim-rollout.db")} == {"pim-rollout.key"}
