"""GET /api/v1/tenants/{id}/reports/{activations,drift} and POST .../reports/collect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.db.session import SessionFactory
from app.domain.roles import APPLICATION_ADMINISTRATOR, USER_ADMINISTRATOR
from tests.monitoring_rig import (
    Api,
    day,
    started_monitoring_api,
    two_weeks_of_activity,
)


@pytest.fixture
async def api(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    async with started_monitoring_api(session_factory, database_url, tmp_path) as built:
        yield built


class TestActivationsReport:
    async def test_signals_with_their_counts(self, api: Api) -> None:
        await two_weeks_of_activity(api.rig)
        api.rig.at(day(21, 12))
        collected = await api.http.post(api.url("collect"), headers=api.headers["operator"])
        assert collected.status_code == 200, collected.text
        assert collected.json()["requests_new"] == 10  # 9 activations and 1 deactivation
        response = await api.http.get(
            api.url("activations"), params={"period": "P14D"}, headers=api.headers["viewer"]
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["period"], body["role"]) == ("P14D", None)
        assert body["collection"]["stale"] is False
        totals = body["signals"]["totals"]
        assert totals["activations"] == 9
        assert totals["duration"]["buckets"] == [2, 2, 1, 0, 4]
        assert totals["duration"]["share_at_max"] == 0.4444
        assert totals["duration"]["median_requested"] == "PT3H"
        assert totals["duration"]["reading"] == "healthy"
        assert totals["tickets"] == {"without_ticket": 7, "share_without_ticket": 0.7778}
        assert totals["justifications"]["smelly"] == 5
        assert totals["approvals"]["failed_approvals"] == 5
        weeks = body["signals"]["weeks"]
        assert [w["week_start"] for w in weeks] == [
            "2025-01-13T00:00:00Z",
            "2025-01-20T00:00:00Z",
            "2025-01-27T00:00:00Z",
        ]
        assert [w["failed_approvals_spike"] for w in weeks] == [False, True, False]
        roles = {r["role_definition_id"]: r for r in body["signals"]["roles"]}
        assert roles[USER_ADMINISTRATOR]["max_duration"] == "PT4H"
        assert roles[USER_ADMINISTRATOR]["totals"]["duration"]["reading"] == "being_gamed"
        assert body["signals"]["coaching"][0]["smelly_justifications"] == 3

    async def test_role_filter(self, api: Api) -> None:
        await two_weeks_of_activity(api.rig)
        api.rig.at(day(21, 12))
        await api.rig.collect()
        response = await api.http.get(
            api.url("activations"),
            params={"role": "Application Administrator", "period": "P4W"},
            headers=api.headers["viewer"],
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["role"] == APPLICATION_ADMINISTRATOR
        assert [r["role_definition_id"] for r in body["signals"]["roles"]] == [
            APPLICATION_ADMINISTRATOR
        ]
        assert body["signals"]["totals"]["activations"] == 2

    @pytest.mark.parametrize(
        ("params", "path"),
        [
            ({"period": "fortnight"}, "query.period"),
            ({"period": "P400D"}, "query.period"),
            ({"period": "P" + "1" * 20 + "D"}, "query.period"),
            ({"role": "Chief Coffee Officer"}, "query.role"),
        ],
    )
    async def test_bad_filter_is_422_naming_the_parameter(
        self, api: Api, params: dict[str, str], path: str
    ) -> None:
        response = await api.http.get(
            api.url("activations"), params=params, headers=api.headers["viewer"]
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["path"] for e in response.json()["errors"]] == [path]

    async def test_unknown_tenant_is_404(self, api: Api) -> None:
        for report in ("activations", "drift"):
            response = await api.http.get(api.url(report, "nope"), headers=api.headers["viewer"])
            assert response.status_code == 404, response.text
            assert response.json()["detail"] == "no tenant with id nope"

    async def test_needs_a_token(self, api: Api) -> None:
        response = await api.http.get(api.url("activations"))
        assert response.status_code == 401


class TestDriftReport:
    async def test_findings_and_global_admins(self, api: Api) -> None:
        app_admin = api.rig.eligible_user(APPLICATION_ADMINISTRATOR)
        api.rig.at(day(2))
        await api.rig.assign_outside_pim(app_admin, APPLICATION_ADMINISTRATOR)
        api.rig.at(day(3))
        await api.rig.collect()
        response = await api.http.get(api.url("drift"), headers=api.headers["viewer"])
        assert response.status_code == 200, response.text
        body = response.json()
        (finding,) = body["findings"]
        assert finding["kind"] == "reassigned_after_conversion"
        assert finding["source"] == "outside_pim"
        assert finding["principal_id"] == app_admin
        assert finding["role_definition_id"] == APPLICATION_ADMINISTRATOR
        assert finding["seen_at"] == "2025-01-09T09:00:00Z"
        assert finding["assigned_at"] == "2025-01-08T09:00:00Z"
        admins = body["global_administrators"]
        assert (admins["break_glass_configured"], admins["break_glass_holding"]) == (2, 2)
        assert admins["standing"] == 2 + len(admins["others"])


class TestCollect:
    async def test_viewer_may_not_collect(self, api: Api) -> None:
        response = await api.http.post(api.url("collect"), headers=api.headers["viewer"])
        assert response.status_code == 403

    async def test_graph_failure_is_503(self, api: Api) -> None:
        await api.rig.sim("PUT", "/_sim/permissions", json={"granted": []})
        response = await api.http.post(api.url("collect"), headers=api.headers["operator"])
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("collecting from Graph failed: audits: ")

    async def test_unknown_tenant(self, api: Api) -> None:
        response = await api.http.post(api.url("collect", "nope"), headers=api.headers["operator"])
        assert response.status_code == 404
