"""``POST /$batch``: limits, ids, Content-Type, dependsOn, per-item throttling, reply order."""

from __future__ import annotations

from typing import Any

import pytest

from app.simulator.faults import SimLimits
from app.simulator.state import SimState
from tests.simulator.conftest import USER_ADMIN, Sim, SimFactory, assign_body, holder

BATCH = "/v1.0/$batch"
JSON = {"Content-Type": "application/json"}


def _get(item_id: str, url: str = "/organization", **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "method": "GET", "url": url, **extra}


class TestValidation:
    async def test_more_than_twenty_requests_is_400(self, sim: Sim) -> None:
        response = await sim.post(BATCH, {"requests": [_get(str(i)) for i in range(21)]})
        assert response.status_code == 400
        assert "limit of 20" in response.json()["error"]["message"]

    async def test_duplicate_ids_fail_the_whole_batch(self, sim: Sim) -> None:
        response = await sim.post(BATCH, {"requests": [_get("1"), _get("1")]})
        assert response.status_code == 400
        assert "unique" in response.json()["error"]["message"]

    async def test_a_body_needs_a_content_type(self, sim: Sim) -> None:
        item = {
            "id": "1",
            "method": "POST",
            "url": "/directoryObjects/getByIds",
            "body": {"ids": []},
        }
        assert (await sim.post(BATCH, {"requests": [item]})).status_code == 400
        item["headers"] = JSON
        response = await sim.post(BATCH, {"requests": [item]})
        assert response.status_code == 200
        assert response.json()["responses"][0]["status"] == 200

    @pytest.mark.parametrize(
        "requests",
        [
            [],
            [{"id": "1", "method": "GET"}],
            [{"id": "1", "method": "FETCH", "url": "/users"}],
            [_get("1", dependsOn=["9"])],
            [_get("1", dependsOn=["2"]), _get("2", dependsOn=["1"])],
        ],
    )
    async def test_malformed_batches_are_400(
        self, sim: Sim, requests: list[dict[str, Any]]
    ) -> None:
        assert (await sim.post(BATCH, {"requests": requests})).status_code == 400

    async def test_absolute_urls_fail_their_item(self, sim: Sim) -> None:
        response = await sim.post(
            BATCH, {"requests": [_get("1", "https://graph.microsoft.com/v1.0/users")]}
        )
        assert response.json()["responses"][0]["status"] == 400


class TestExecution:
    async def test_items_carry_their_own_status_headers_and_body(self, sim: Sim) -> None:
        requests = [
            _get("ok", "/users?$top=1"),
            _get("missing", "/users/nobody@contoso.com"),
            _get("bad", "/users?$filter=city eq 'Paris'"),
        ]
        response = await sim.post(BATCH, {"requests": requests})
        assert response.status_code == 200
        items = {r["id"]: r for r in response.json()["responses"]}
        assert items["ok"]["status"] == 200
        assert items["ok"]["body"]["value"]
        assert items["ok"]["headers"]["x-ms-resource-unit"] == "1"
        assert items["missing"]["status"] == 404
        assert items["missing"]["body"]["error"]["code"]
        assert items["bad"]["status"] == 400

    async def test_writes_in_a_batch_change_state(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        item = {
            "id": "1",
            "method": "POST",
            "url": "/roleManagement/directory/roleEligibilityScheduleRequests",
            "headers": JSON,
            "body": assign_body(principal, USER_ADMIN),
        }
        response = await sim.post(BATCH, {"requests": [item]})
        assert response.json()["responses"][0]["status"] == 201
        assert sim.state.eligibles.find(principal, USER_ADMIN, "/") is not None

    async def test_depends_on_runs_in_order_and_fails_dependants_with_424(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        eligible = {
            "id": "eligible",
            "method": "POST",
            "url": "/roleManagement/directory/roleEligibilityScheduleRequests",
            "headers": JSON,
            "body": assign_body(principal, USER_ADMIN),
        }
        remove = {
            "id": "remove",
            "method": "POST",
            "url": "/roleManagement/directory/roleAssignmentScheduleRequests",
            "headers": JSON,
            "body": {
                "action": "adminRemove",
                "principalId": principal,
                "roleDefinitionId": USER_ADMIN,
                "directoryScopeId": "/",
            },
            "dependsOn": ["eligible"],
        }
        first = await sim.post(BATCH, {"requests": [remove, eligible]})
        statuses = {r["id"]: r["status"] for r in first.json()["responses"]}
        assert statuses == {"eligible": 201, "remove": 201}
        again = await sim.post(
            BATCH, {"requests": [eligible, {**remove, "id": "after"} | {"dependsOn": ["eligible"]}]}
        )
        statuses = {r["id"]: r["status"] for r in again.json()["responses"]}
        assert statuses == {"eligible": 400, "after": 424}

    async def test_reply_order_is_shuffled_but_reproducible(
        self, tenant: SimState, make_sim: SimFactory
    ) -> None:
        requests = [_get(str(i), "/organization") for i in range(10)]
        orders = []
        for _ in range(2):
            sim = await make_sim(tenant, SimLimits(throttling=False, seed=3))
            response = await sim.post(BATCH, {"requests": requests})
            orders.append([r["id"] for r in response.json()["responses"]])
        assert orders[0] == orders[1]
        assert orders[0] != [str(i) for i in range(10)]

    async def test_each_item_is_throttled_on_its_own(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits(ru_per_10s=5))
        response = await sim.post(BATCH, {"requests": [_get(str(i)) for i in range(8)]})
        assert response.status_code == 200
        items = response.json()["responses"]
        throttled = [r for r in items if r["status"] == 429]
        assert len(throttled) == 3
        assert len([r for r in items if r["status"] == 200]) == 5
        for item in throttled:
            assert float(item["headers"]["Retry-After"]) > 0
            assert item["body"]["error"]["code"] == "TooManyRequests"

    async def test_items_need_their_own_permissions(self, sim: Sim) -> None:
        sim.state.granted_permissions.discard("Organization.Read.All")
        sim.state.granted_permissions.discard("Directory.Read.All")
        response = await sim.post(BATCH, {"requests": [_get("1")]})
        assert response.json()["responses"][0]["status"] == 403

    async def test_nested_batch_is_refused(self, sim: Sim) -> None:
        item = {
            "id": "1",
            "method": "POST",
            "url": "/$batch",
            "headers": JSON,
            "body": {"requests": []},
        }
        response = await sim.post(BATCH, {"requests": [item]})
        assert response.json()["responses"][0]["status"] == 400

    async def test_batch_needs_a_token(self, sim: Sim) -> None:
        response = await sim.client.post(BATCH, json={"requests": [_get("1")]})
        assert response.status_code == 401
