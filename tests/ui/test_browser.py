"""The admin UI in Debian's Chromium against a real uvicorn server and a live scheduler.

A whole rollout is driven through the pages: sign in, create a plan, dry run, comms, start,
watch it move without reloading, pause, resume, advance a manual gate, roll back. A viewer then
sees no buttons and a forged POST is refused. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.db.session import create_db_engine, create_session_factory, unit_of_work
from app.domain.tenant import TenantSpec
from app.graph.factory import GraphClientFactory
from app.main import build_context, create_app
from app.services import tenants
from app.services.tokens import create_token
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from tests.factories import PLANS_DIR, ROOT

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]
SIM_URL = "http://sim.test/v1.0"


@dataclass
class LiveServer:
    base_url: str
    admin_token: str
    viewer_token: str
    tenant_name: str


def _fast_plans(target: Path) -> Path:
    """The demo plan with every phase due at once; phases still run one after another."""
    target.mkdir()
    text = (PLANS_DIR / "demo.yaml").read_text()
    (target / "demo.yaml").write_text(re.sub(r"starts_after: PT\d+S", "starts_after: PT0S", text))
    return target


@pytest.fixture
def live_server(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveServer]:
    database = tmp_path / "ui.db"
    shutil.copyfile(sqlite_template, database)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        database_url=f"sqlite:///{database}",
        plans_dir=_fast_plans(tmp_path / "plans"),
        secret_key_file=tmp_path / "ui.key",
        public_url=f"http://127.0.0.1:{port}",
        scheduler={"enabled": True, "tick_seconds": 0.5},
        graph={"request_timeout_seconds": 5, "total_deadline_seconds": 20},
    )
    sim = create_simulator_app(
        generate_tenant(users=120, admins=24, seed=9),
        limits=SimLimits(latency_ms=25, min_change_interval_seconds=0),
    )
    engine = create_db_engine(settings.database_url)
    ctx = build_context(
        settings,
        session_factory=create_session_factory(engine),
        graph_factory=GraphClientFactory(
            settings.graph, transport_for=lambda _url: httpx.ASGITransport(app=sim)
        ),
    )
    with TestClient(sim) as sim_client:
        profile = sim_client.get("/_sim/profile").json()
    spec = TenantSpec.model_validate(
        {
            **profile,
            "name": "Contoso (simulated)",
            "graph_base_url": SIM_URL,
            "graph_limits": {"min_change_interval_seconds": 0},
        }
    )
    now = ctx.clock.now()
    with unit_of_work(ctx.session_factory) as session:
        tenants.create_tenant(session, spec=spec, box=ctx.secret_box, now=now)
        admin, _ = create_token(session, role="admin", name="ui-admin", now=now)
        viewer, _ = create_token(session, role="viewer", name="ui-viewer", now=now)

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, context=ctx),
            log_level="warning",
            access_log=False,
            ws="none",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start within 15 s"
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", admin, viewer, spec.name)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, base_url: str, token: str, *, shot: str | None = None) -> None:
    page.goto(f"{base_url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    if shot:
        _shot(page, shot)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Plans", exact=True)).to_be_visible()


def _act(page: Page, button: str, reason: str, *, confirm: bool = False) -> None:
    """Open an action's page from the timeline, give the reason, confirm and submit."""
    page.locator(button).click()
    page.get_by_label("Reason").fill(reason)
    if confirm:
        page.get_by_label("I understand").check()
    page.locator("#confirm-action").click()
    expect(page.locator(".flash").first).to_be_visible()


def _phase_state(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#phase-{key} [data-testid=phase-state]")


class TestRolloutInTheBrowser:
    def test_operator_drives_a_rollout_and_a_viewer_cannot(
        self, live_server: LiveServer, browser: Browser
    ) -> None:
        base = live_server.base_url
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)

        _sign_in(page, base, live_server.admin_token, shot="sign-in")
        expect(page.get_by_text("No plans yet")).to_be_visible()
        _shot(page, "plans-empty")

        page.get_by_role("link", name="New plan").first.click()
        page.get_by_label("Tenant").select_option(label=live_server.tenant_name)
        page.get_by_label("Template").select_option("demo")
        page.get_by_label("Name").fill("Browser rollout")
        page.get_by_role("button", name="Create draft plan").click()
        expect(page.get_by_test_id("plan-state")).to_have_text("draft")
        plan_url = page.url

        page.get_by_role("link", name="Dry run").click()
        expect(page.locator(".preview-phase")).to_have_count(5, timeout=20_000)
        expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
        _shot(page, "plan-preview")

        page.get_by_role("link", name="Comms").click()
        expect(page.get_by_test_id("comms-subject")).to_contain_text("just-in-time")
        expect(page.frame_locator("iframe.comms-frame").locator("h1")).to_be_visible()
        _shot(page, "plan-comms")

        page.get_by_role("link", name="Timeline").click()
        _act(page, "#action-start", "Browser test rollout", confirm=True)
        expect(page.locator(".flash-success")).to_contain_text("Start")
        # From here on the page must change by itself: a reload would drop this marker.
        page.evaluate("window.__sameDocument = true")
        expect(_phase_state(page, "pilot")).to_have_text("completed", timeout=30_000)
        expect(page.locator("#phase-pilot [data-testid=phase-progress]")).to_contain_text("done")
        expect(_phase_state(page, "feedback")).to_have_text("awaiting gate", timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True
        _shot(page, "plan-timeline-gate")

        _act(page, "#action-pause", "Waiting for the pilot's feedback")
        expect(page.get_by_test_id("plan-state")).to_have_text("paused")
        _act(page, "#action-resume", "Feedback collected")
        expect(page.get_by_test_id("plan-state")).to_have_text("running")

        _act(page, "#advance-feedback", "Pilot feedback: 8 hours is right")
        page.evaluate("window.__sameDocument = true")
        expect(_phase_state(page, "feedback")).to_have_text("completed", timeout=30_000)
        expect(_phase_state(page, "all-admins")).not_to_have_text("pending", timeout=30_000)
        _shot(page, "plan-timeline-mid-run")
        expect(_phase_state(page, "all-admins")).to_have_text("completed", timeout=30_000)
        expect(_phase_state(page, "ga-approval")).to_have_text("awaiting gate", timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("#phase-all-admins [data-testid=phase-progress]")).to_contain_text(
            "done"
        )
        _shot(page, "plan-timeline")

        page.get_by_role("link", name="Journal").click()
        expect(page.locator("table.data tbody tr").first).to_be_visible()
        _shot(page, "plan-journal")
        page.get_by_role("link", name="History").click()
        expect(page.locator(".history-entry").first).to_be_visible()
        _shot(page, "plan-history")
        page.get_by_role("link", name="Baseline").click()
        expect(page.get_by_role("table").first).to_be_visible()

        page.get_by_role("link", name=live_server.tenant_name).first.click()
        expect(page.get_by_role("heading", name="Latest inventory")).to_be_visible()
        _shot(page, "tenant")

        page.goto(plan_url)
        _act(page, "#action-rollback", "Browser test done: restore the baseline", confirm=True)
        expect(page.get_by_test_id("plan-state")).to_have_text("rolled back", timeout=40_000)
        expect(page.locator("#plan-live .actions a")).to_have_count(0)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
        expect(page.get_by_role("cell", name="rolled back", exact=True)).to_be_visible()
        _shot(page, "plans-list")

        narrow = browser.new_context(viewport={"width": 380, "height": 800})
        small = narrow.new_page()
        _sign_in(small, base, live_server.admin_token)
        small.goto(plan_url)
        expect(small.get_by_test_id("plan-state")).to_have_text("rolled back")
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 380, f"the page scrolls sideways at 380 px ({width} px wide)"
        _shot(small, "plan-timeline-narrow")
        narrow.close()
        context.close()

    def test_viewer_sees_no_buttons_and_a_forged_post_is_refused(
        self, live_server: LiveServer, browser: Browser
    ) -> None:
        base = live_server.base_url
        admin = browser.new_context()
        page = admin.new_page()
        _sign_in(page, base, live_server.admin_token)
        page.get_by_role("link", name="New plan").first.click()
        page.get_by_role("button", name="Create draft plan").click()
        expect(page.get_by_test_id("plan-state")).to_have_text("draft")
        plan_url = page.url
        admin.close()

        viewer = browser.new_context()
        page = viewer.new_page()
        page.set_default_timeout(15_000)
        _sign_in(page, base, live_server.viewer_token)
        expect(page.get_by_role("link", name="New plan")).to_have_count(0)
        page.goto(plan_url)
        expect(page.get_by_test_id("plan-state")).to_have_text("draft")
        expect(page.locator("#plan-live .actions a, #plan-live .actions button")).to_have_count(0)
        expect(page.get_by_text("actions need the operator role")).to_be_visible()
        expect(page.get_by_role("link", name="Dry run")).to_have_count(0)
        _shot(page, "plan-viewer")
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text("Skip to content")
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text("Plans")  # the breadcrumb, inside main

        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token
        forged = page.request.post(
            f"{plan_url}/actions/start",
            form={"csrf_token": token, "reason": "forged by a viewer", "confirm": "yes"},
            max_redirects=0,
        )
        assert forged.status == 403
        assert "operator role" in forged.text()
        page.reload()
        expect(page.get_by_test_id("plan-state")).to_have_text("draft")
        viewer.close()
