"""The monitoring page: server-rendered SVG charts, readings, drift; and its chart functions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from app.db.session import SessionFactory
from app.domain.roles import APPLICATION_ADMINISTRATOR
from app.ui import monitoring
from app.ui.monitoring import Bar, Segment, bar_chart
from tests.monitoring_rig import (
    Api,
    day,
    started_monitoring_api,
    two_weeks_of_activity,
)


def include_monitoring(app: FastAPI) -> None:
    """The page's router, in the UI sub-app (until ``app/ui/app.py`` includes it itself)."""
    ui = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/ui")
    assert isinstance(ui, FastAPI)
    if not any(getattr(r, "name", None) == "tenant_monitoring" for r in ui.routes):
        ui.include_router(monitoring.router)


class Browser:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def csrf(self, path: str = "/ui/login") -> str:
        page = await self.http.get(path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)

    async def sign_in(self, token: str) -> None:
        response = await self.http.post(
            "/ui/login", data={"token": token, "csrf_token": await self.csrf()}
        )
        assert response.status_code == 303, response.text


@pytest.fixture
async def api(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    async with started_monitoring_api(session_factory, database_url, tmp_path) as built:
        include_monitoring(built.app)
        yield built


async def browser(api: Api, role: str) -> Browser:
    b = Browser(api.http)
    await b.sign_in(api.headers[role]["Authorization"].removeprefix("Bearer "))
    return b


def page_url(api: Api) -> str:
    return f"/ui/tenants/{api.rig.tenant_id}/monitoring"


class TestPage:
    async def test_shows_the_signals_with_charts(self, api: Api) -> None:
        cast = await two_weeks_of_activity(api.rig)
        api.rig.at(day(21, 12))
        await api.rig.collect()
        b = await browser(api, "viewer")
        response = await b.http.get(page_url(api), params={"period": "P14D"})
        assert response.status_code == 200, response.text
        html = response.text
        assert '<dd data-testid="activations">9</dd>' in html
        assert '<dd data-testid="without-ticket">7</dd>' in html
        assert '<dd data-testid="failed-approvals">5</dd>' in html
        assert html.count("<svg") == 6  # weekly, failed approvals, tickets, 3 durations
        assert 'data-chart="weekly"' in html
        assert "▲ spike" in html
        assert "Being gamed: 50% of activations ask for the full 4h" in html
        assert api.rig.upn(cast.user_admin) in html
        assert "“admin work”" in html
        assert "Collect now" not in html  # a viewer
        assert " style=" not in html  # the page's CSP allows no inline style
        assert "<script" not in html.split("</head>", 1)[1]

    async def test_empty_tenant(self, api: Api) -> None:
        b = await browser(api, "viewer")
        response = await b.http.get(page_url(api))
        assert response.status_code == 200
        assert "No activations in this period" in response.text
        assert "Activity has not been collected yet" in response.text
        assert 'data-testid="no-drift"' in response.text

    async def test_drift_and_global_admins(self, api: Api) -> None:
        app_admin = api.rig.eligible_user(APPLICATION_ADMINISTRATOR)
        api.rig.at(day(2))
        await api.rig.assign_outside_pim(app_admin, APPLICATION_ADMINISTRATOR)
        await api.rig.collect()
        b = await browser(api, "viewer")
        html = (await b.http.get(page_url(api))).text
        assert html.count('data-testid="drift-finding"') == 1
        assert "reassigned after conversion" in html
        assert "outside PIM" in html
        assert "standing Global Administrator(s) besides the break-glass accounts" in html

    async def test_bad_period_says_so_and_shows_the_default(self, api: Api) -> None:
        b = await browser(api, "viewer")
        response = await b.http.get(page_url(api), params={"period": "forever", "role": "x"})
        assert response.status_code == 422
        assert 'id="period-error"' in response.text
        assert 'id="role-error"' not in response.text  # the period fails first
        response = await b.http.get(page_url(api), params={"role": "Chief Coffee Officer"})
        assert response.status_code == 422
        assert "Role: not a role template id" in response.text

    async def test_unknown_tenant_and_anonymous(self, api: Api) -> None:
        anonymous = await api.http.get(page_url(api))
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/ui/login")
        b = await browser(api, "viewer")
        assert (await b.http.get("/ui/tenants/nope/monitoring")).status_code == 404


class TestCollectNow:
    async def test_operator_collects_and_sees_what_was_new(self, api: Api) -> None:
        b = await browser(api, "operator")
        page = await b.http.get(page_url(api))
        assert 'id="collect-now"' in page.text
        token = await b.csrf(page_url(api))
        response = await b.http.post(f"{page_url(api)}/collect", data={"csrf_token": token})
        assert response.status_code == 303
        assert response.headers["location"] == page_url(api)
        follow = await b.http.get(page_url(api))
        assert "Activity collected." in follow.text
        assert "Activity collected <time" in follow.text

    async def test_needs_the_csrf_token_and_an_operator(self, api: Api) -> None:
        operator = await browser(api, "operator")
        response = await operator.http.post(f"{page_url(api)}/collect", data={})
        assert response.status_code == 403
        api.http.cookies.clear()
        viewer = await browser(api, "viewer")
        token = await viewer.csrf(page_url(api))
        response = await viewer.http.post(f"{page_url(api)}/collect", data={"csrf_token": token})
        assert response.status_code == 403

    async def test_graph_failure_is_shown(self, api: Api) -> None:
        await api.rig.sim("PUT", "/_sim/permissions", json={"granted": []})
        b = await browser(api, "operator")
        token = await b.csrf(page_url(api))
        await b.http.post(f"{page_url(api)}/collect", data={"csrf_token": token})
        html = (await b.http.get(page_url(api))).text
        assert "Collecting from Graph failed." in html
        assert "audits: " in html


class TestBarChart:
    def test_escapes_every_text(self) -> None:
        svg = bar_chart(
            [Bar("<b>wk</b>", (Segment('a"&<x>', 3, "ok"),), note="<spike>")],
            chart_id='c"1',
            title="<script>alert(1)</script>",
            description="a & b",
        )
        assert "<script>" not in svg
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
        assert "&lt;b&gt;wk&lt;/b&gt;" in svg
        assert "a&#34;&amp;&lt;x&gt;" in svg
        assert "▲ &lt;spike&gt;" in svg
        assert 'aria-labelledby="c&#34;1-title c&#34;1-desc"' in svg
        assert "<desc" in svg
        assert "a &amp; b" in svg

    def test_stacks_segments_and_scales_to_a_round_maximum(self) -> None:
        svg = bar_chart(
            [
                Bar("one", (Segment("granted", 4, "ok"), Segment("failed", 3, "bad"))),
                Bar("two", (Segment("granted", 0, "ok"), Segment("failed", 1, "bad"))),
            ],
            chart_id="c",
            title="t",
            description="d",
        )
        assert svg.count("<rect") == 3 + 2  # non-empty segments + two legend swatches
        assert ">10</text>" in svg  # axis maximum for a peak of 7
        assert "<title>one: 4 granted</title>" in svg
        assert "polyline" not in svg

    def test_baseline_line_skips_unknown_weeks(self) -> None:
        bars = [Bar(str(i), (Segment("failed", i, "bad"),)) for i in range(3)]
        svg = bar_chart(
            bars,
            chart_id="c",
            title="t",
            description="d",
            line=[None, 0.5, 1.25],
            line_label="trailing mean",
        )
        (points,) = re.findall(r'<polyline points="([^"]+)"', svg)
        assert len(points.split()) == 2
        assert svg.count("<circle") == 2
        assert "trailing mean" in svg

    def test_no_bars(self) -> None:
        svg = bar_chart([], chart_id="c", title="t", description="nothing")
        assert svg.startswith("<svg")
        assert svg.endswith("</svg>")
