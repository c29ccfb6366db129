"""GET /metrics is scraped: database counts, Graph and HTTP counters, and nothing identifying."""

from __future__ import annotations

import shutil
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, create_engine

from app.db.session import Database, SessionFactory, create_db_engine, create_session_factory
from app.domain.roles import APPLICATION_ADMINISTRATOR
from app.domain.tenant import GraphLimits
from app.graph.client import GraphClient
from app.graph.errors import GraphError
from app.main import build_context, create_app
from app.metrics import DatabaseCollector, GraphMetrics, exposition
from app.settings import GraphSettings, Settings
from tests.monitoring_rig import (
    SIM_URL,
    Api,
    cast_of,
    day,
    started_monitoring_api,
)


async def _no_sleep(_seconds: float) -> None:
    return None


class _Bearer(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer simulated"
        yield request


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(api: Api) -> tuple[str, Samples]:
    response = await api.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, parse(response.text)


def short_retry_client(api: Api) -> GraphClient:
    """A client of the rig's simulated tenant that gives up after a second throttled try."""
    return GraphClient(
        SIM_URL,
        auth=_Bearer(),
        transport=httpx.ASGITransport(app=api.rig.sim_app),
        settings=GraphSettings(max_attempts=2),
        limits=GraphLimits(),
        sleeper=_no_sleep,
    )


@pytest.fixture
async def api(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    async with started_monitoring_api(session_factory, database_url, tmp_path) as built:
        yield built


class TestScrape:
    async def test_counts_from_the_database(self, api: Api) -> None:
        cast = cast_of(api.rig)
        api.rig.at(day(2))
        await api.rig.activate(
            cast.app_admin, APPLICATION_ADMINISTRATOR, hours=1, justification="Rotating secrets"
        )
        await api.rig.activate(
            cast.user_admin, "fe930be7-5e62-47db-91af-98c3a49a38b1", hours=1, justification="x"
        )
        await api.rig.collect()
        _, samples = await scrape(api)
        assert value(samples, "pim_rollout_database_up") == 1
        assert value(samples, "pim_rollout_plans", state="running") == 1
        assert value(samples, "pim_rollout_plans", state="draft") == 0
        assert value(samples, "pim_rollout_phases", state="completed") == 1
        assert value(samples, "pim_rollout_phases", state="pending") == 1
        assert value(samples, "pim_rollout_conversions", state="done") == 4
        assert value(samples, "pim_rollout_conversions", state="failed") == 0
        assert value(samples, "pim_rollout_activations", status="Provisioned") == 1
        assert value(samples, "pim_rollout_activations", status="PendingApproval") == 1

    async def test_graph_and_http_counters_move(self, api: Api) -> None:
        _, before = await scrape(api)
        ok = await api.http.post(api.url("collect"), headers=api.headers["operator"])
        assert ok.status_code == 200
        _, after = await scrape(api)
        ok_get = ("pim_rollout_graph_requests_total", "GET", "identity", "200")

        def graph(samples: Samples) -> float:
            name, method, bucket, status = ok_get
            return value(samples, name, method=method, bucket=bucket, status=status)

        assert graph(after) > graph(before)
        route = "/api/v1/tenants/{tenant_id}/reports/collect"
        labels = {"method": "POST", "route": route, "status": "200"}
        assert value(after, "pim_rollout_http_requests_total", **labels) == (
            value(before, "pim_rollout_http_requests_total", **labels) + 1
        )
        assert (
            value(
                after, "pim_rollout_http_request_duration_seconds_count", method="POST", route=route
            )
            == value(
                before,
                "pim_rollout_http_request_duration_seconds_count",
                method="POST",
                route=route,
            )
            + 1
        )
        assert value(after, "pim_rollout_monitoring_collections_total", result="ok") == (
            value(before, "pim_rollout_monitoring_collections_total", result="ok") + 1
        )

    async def test_throttled_requests_are_counted(self, api: Api) -> None:
        await api.rig.sim("PUT", "/_sim/faults", json={"reports_per_10s": 1})
        client = short_retry_client(api)
        _, before = await scrape(api)
        # The simulated tenant's clock stands still, so its audit-log bucket never refills:
        # the second read of the audit log is throttled until the client gives up.
        async with client:
            assert [a async for a in client.iter_directory_audits()]
            with pytest.raises(GraphError):
                assert [a async for a in client.iter_directory_audits()]
        _, after = await scrape(api)
        throttled = value(after, "pim_rollout_graph_throttled_total", bucket="reports")
        assert throttled == value(before, "pim_rollout_graph_throttled_total", bucket="reports") + 2
        answers = ("pim_rollout_graph_requests_total", "GET", "reports")
        assert value(after, answers[0], method="GET", bucket="reports", status="429") == (
            value(before, answers[0], method="GET", bucket="reports", status="429") + 2
        )

    async def test_throttled_items_inside_a_batch_are_counted(self, api: Api) -> None:
        users = [u["id"] for u in (await api.rig.sim("GET", "/_sim/state"))["users"][:4]]
        await api.rig.sim("PUT", "/_sim/faults", json={"ru_per_10s": 2})
        client = short_retry_client(api)
        sent_before = (await api.rig.sim("GET", "/_sim/requests"))["throttled"]
        _, before = await scrape(api)
        # The $batch envelope is a 200; Graph throttles the items inside it one by one.
        async with client:
            found = await client.get_users(users, select=["id"])
        assert any(isinstance(v, GraphError) for v in found.values())
        _, after = await scrape(api)
        sent = (await api.rig.sim("GET", "/_sim/requests"))["throttled"] - sent_before
        assert sent >= 2
        counted = value(after, "pim_rollout_graph_throttled_total", bucket="identity") - value(
            before, "pim_rollout_graph_throttled_total", bucket="identity"
        )
        assert counted == sent

    async def test_nothing_identifying_or_secret(self, api: Api) -> None:
        await api.rig.collect()
        await api.http.get(api.url("drift"), headers=api.headers["viewer"])
        text, _ = await scrape(api)
        state = api.rig.sim_state
        identifying = [api.rig.tenant_id, api.rig.plan_id, state.tenant_id]
        identifying += list(state.users) + list(state.groups)
        assert [i for i in identifying if i in text] == []
        for header in api.headers.values():
            assert header["Authorization"].removeprefix("Bearer ") not in text
        assert "Bearer" not in text

    async def test_open_without_a_token(self, api: Api) -> None:
        response = await api.http.get("/metrics")
        assert response.status_code == 200

    async def test_the_database_is_read_off_the_event_loop(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: list[int] = []
        real = DatabaseCollector.collect

        def collect(self: DatabaseCollector) -> Iterator[Metric]:
            threads.append(threading.get_ident())
            return real(self)

        monkeypatch.setattr(DatabaseCollector, "collect", collect)
        _, samples = await scrape(api)
        assert value(samples, "pim_rollout_database_up") == 1
        assert threads
        assert threading.get_ident() not in threads


class TestRegistry:
    async def test_several_apps_in_one_process_scrape_their_own_database(
        self, api: Api, sqlite_template: Path, tmp_path: Path
    ) -> None:
        copy = tmp_path / "other.db"
        shutil.copyfile(sqlite_template, copy)
        settings = Settings(
            database_url=f"sqlite:///{copy}",
            secret_key_file=tmp_path / "other.key",
            scheduler={"enabled": False},
        )
        engine = create_db_engine(settings.database_url, null_pool=True)
        other = create_app(
            settings,
            context=build_context(settings, session_factory=create_session_factory(engine)),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://other.test"
        ) as http:
            other_samples = parse((await http.get("/metrics")).text)
        engine.dispose()
        _, samples = await scrape(api)
        assert value(samples, "pim_rollout_plans", state="running") == 1
        assert value(other_samples, "pim_rollout_plans", state="running") == 0
        assert value(other_samples, "pim_rollout_database_up") == 1

    def test_database_down_still_answers(self, tmp_path: Path) -> None:
        broken = Database(
            sessionmaker(
                bind=create_engine(f"sqlite:///{tmp_path}/missing/nothing.db"), class_=Session
            )
        )
        samples = parse(exposition(broken).decode())
        assert value(samples, "pim_rollout_database_up") == 0
        assert ("pim_rollout_plans", (("state", "running"),)) not in samples
        assert next(iter(DatabaseCollector(broken).collect())).samples[0].value == 0

    def test_graph_observer(self) -> None:
        observer = GraphMetrics()
        before = parse(exposition_text())
        observer.graph_response(method="PATCH", bucket="identity", status=429, seconds=0.2)
        observer.graph_transport_error(method="PATCH", bucket="identity", seconds=1.5)
        after = parse(exposition_text())
        for name, labels in [
            ("pim_rollout_graph_throttled_total", {"bucket": "identity"}),
            (
                "pim_rollout_graph_requests_total",
                {"method": "PATCH", "bucket": "identity", "status": "429"},
            ),
            (
                "pim_rollout_graph_requests_total",
                {"method": "PATCH", "bucket": "identity", "status": "transport_error"},
            ),
        ]:
            assert value(after, name, **labels) == value(before, name, **labels) + 1
        count = "pim_rollout_graph_request_duration_seconds_count"
        assert value(after, count, method="PATCH", bucket="identity") == (
            value(before, count, method="PATCH", bucket="identity") + 2
        )


def exposition_text() -> str:
    from prometheus_client import generate_latest

    from app.metrics import REGISTRY

    return generate_latest(REGISTRY).decode()
