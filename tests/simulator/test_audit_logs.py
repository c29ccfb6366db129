"""``/auditLogs/directoryAudits``: filters, ordering, paging and its own 5-per-10 s limit."""

from __future__ import annotations

from datetime import timedelta

from app.simulator.faults import SimLimits
from app.simulator.state import SimState
from app.simulator.timefmt import format_datetime
from tests.simulator.conftest import USER_ADMIN, Sim, SimFactory, assign_body, holder, plain_user

AUDITS = "/v1.0/auditLogs/directoryAudits"


async def _changes(sim: Sim) -> tuple[str, str]:
    first = holder(sim.state, USER_ADMIN)
    await sim.request("eligibility", assign_body(first, USER_ADMIN, justification="first"))
    sim.clock.advance(3600)
    second = plain_user(sim.state)
    await sim.request("eligibility", assign_body(second, USER_ADMIN, justification="second"))
    return first, second


class TestFilters:
    async def test_by_target_resource(self, sim: Sim) -> None:
        first, _ = await _changes(sim)
        items = (
            await sim.get(f"{AUDITS}?$filter=targetResources/any(t: t/id eq '{first}')")
        ).json()["value"]
        assert items
        assert all(any(t["id"] == first for t in a["targetResources"]) for a in items)

    async def test_by_time_window(self, sim: Sim) -> None:
        await _changes(sim)
        since = format_datetime(sim.clock.now() - timedelta(minutes=1))
        items = (await sim.get(f"{AUDITS}?$filter=activityDateTime ge {since}")).json()["value"]
        assert items
        assert all(a["activityDateTime"] >= since for a in items)
        until = (await sim.get(f"{AUDITS}?$filter=activityDateTime le {since}")).json()["value"]
        assert until
        assert all(a["activityDateTime"] <= since for a in until)

    async def test_by_activity_category_and_service(self, sim: Sim) -> None:
        await _changes(sim)
        name = "Add eligible member to role in PIM completed (permanent)"
        url = (
            f"{AUDITS}?$filter=activityDisplayName eq '{name}' and category eq 'RoleManagement' "
            "and loggedByService eq 'PIM'"
        )
        assert len((await sim.get(url)).json()["value"]) == 2

    async def test_by_initiating_user(self, sim: Sim) -> None:
        await _changes(sim)
        url = f"{AUDITS}?$filter=initiatedBy/user/id eq '00000000-0000-0000-0000-000000000000'"
        assert (await sim.get(url)).json()["value"] == []

    async def test_unsupported_filter(self, sim: Sim) -> None:
        assert (await sim.get(f"{AUDITS}?$filter=operationType eq 'Add'")).status_code == 400


class TestOrderAndPaging:
    async def test_newest_first_by_default_and_ascending_on_request(self, sim: Sim) -> None:
        await _changes(sim)
        newest = (await sim.get(AUDITS)).json()["value"]
        oldest = (await sim.get(f"{AUDITS}?$orderby=activityDateTime asc")).json()["value"]
        stamps = [a["activityDateTime"] for a in newest]
        assert stamps == sorted(stamps, reverse=True)
        assert [a["activityDateTime"] for a in oldest] == sorted(stamps)
        assert (await sim.get(f"{AUDITS}?$orderby=category")).status_code == 400

    async def test_top_and_next_link(self, sim: Sim) -> None:
        await _changes(sim)
        everything = await sim.get_all(f"{AUDITS}?$top=1&$orderby=activityDateTime desc")
        assert len(everything) == len(sim.state.audits) == len({a["id"] for a in everything})

    async def test_get_one(self, sim: Sim) -> None:
        await _changes(sim)
        record = sim.state.audits[0]
        assert (await sim.get(f"{AUDITS}/{record.id}")).json()["id"] == record.id
        assert (await sim.get(f"{AUDITS}/missing")).status_code == 404


class TestReportsLimit:
    async def test_five_requests_per_ten_seconds(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits())
        for _ in range(5):
            assert (await sim.get(AUDITS)).status_code == 200
        throttled = await sim.get(AUDITS)
        assert throttled.status_code == 429
        assert 0 < float(throttled.headers["Retry-After"]) <= 2.0
        assert (await sim.get("/v1.0/organization")).status_code == 200  # other buckets unaffected
        sim.clock.advance(float(throttled.headers["Retry-After"]))
        assert (await sim.get(AUDITS)).status_code == 200

    async def test_needs_both_permissions(self, sim: Sim) -> None:
        sim.state.granted_permissions.discard("Directory.Read.All")
        response = await sim.get(AUDITS)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Authorization_RequestDenied"
