"""The baseline inventory over HTTP: what a plan's start recorded, per role, paged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette

Headers = dict[str, dict[str, str]]
ItemKey = tuple[str, str, str, str]  # role, principal, scope, member type


@pytest.fixture
def sim(sim_app: Starlette) -> Iterator[TestClient]:
    with TestClient(sim_app) as client:
        yield client


@pytest.fixture
def tenant_id(client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]) -> str:
    response = client.post("/api/v1/tenants", json=sim_tenant_body, headers=tokens["admin"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def started_plan(client: TestClient, tokens: Headers, tenant_id: str) -> str:
    """A plan whose start took the baseline (the start runs preflight, then the inventory)."""
    plan = client.post(
        "/api/v1/plans",
        json={"tenant_id": tenant_id, "template": "default"},
        headers=tokens["operator"],
    )
    assert plan.status_code == 201, plan.text
    plan_id = str(plan.json()["id"])
    started = client.post(
        f"/api/v1/plans/{plan_id}/start", headers={**tokens["operator"], "Prefer": "wait=120"}
    )
    assert started.status_code == 200, started.text
    return plan_id


def expected_items(state: dict[str, Any]) -> dict[ItemKey, dict[str, Any]]:
    """Every permanent Active assignment in the tenant, plus what group members inherit."""
    users = {u["id"]: u for u in state["users"]}
    groups = {g["id"]: g for g in state["groups"]}
    sps = {sp["id"]: sp for sp in state["service_principals"]}
    out: dict[ItemKey, dict[str, Any]] = {}
    for a in state["active_assignments"]:
        if a["assignment_type"] != "Assigned" or a["end"] is not None:
            continue
        pid, role, scope = a["principal_id"], a["role_definition_id"], a["directory_scope_id"]
        kind = a["principal_type"]
        if kind == "user":
            name, upn = users[pid]["display_name"], users[pid]["user_principal_name"]
        elif kind == "group":
            name, upn = groups[pid]["display_name"], None
        else:
            name, upn = sps[pid]["display_name"], None
        out[(role, pid, scope, "Direct")] = {"type": kind, "name": name, "upn": upn}
        if kind == "group":
            for member in groups[pid]["member_ids"]:
                out[(role, member, scope, "Group")] = {
                    "type": "user",
                    "name": users[member]["display_name"],
                    "upn": users[member]["user_principal_name"],
                }
    return out


def key_of(item: dict[str, Any]) -> ItemKey:
    return (
        item["role_definition_id"],
        item["principal_id"],
        item["directory_scope_id"],
        item["member_type"],
    )


def all_pages(client: TestClient, url: str, headers: dict[str, str], limit: int) -> list[Any]:
    items: list[Any] = []
    for page in range(100):
        response = client.get(url, params={"limit": limit, "offset": page * limit}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["limit"], body["offset"]) == (limit, page * limit)
        assert len(body["items"]) <= limit
        if not body["items"]:
            return items
        items += body["items"]
    raise AssertionError("paging never ended")


class TestBaseline:
    def test_lists_every_permanent_active_assignment(
        self, client: TestClient, tokens: Headers, sim: TestClient, started_plan: str
    ) -> None:
        state = sim.get("/_sim/state").json()
        response = client.get(
            f"/api/v1/plans/{started_plan}/baseline",
            params={"limit": 10000},
            headers=tokens["viewer"],
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["plan_id"] == started_plan
        expected = expected_items(state)
        items = {key_of(i): i for i in body["items"]}
        assert len(items) == len(body["items"]) == body["item_count"]
        assert set(items) == set(expected)
        kinds = Counter(i["principal_type"] for i in body["items"])
        assert kinds["user"] > 20
        assert kinds["group"] >= 1
        assert kinds["servicePrincipal"] >= 1
        roles = {r["id"]: r["display_name"] for r in state_roles(sim)}
        for key, item in items.items():
            want = expected[key]
            assert item["principal_type"] == want["type"], key
            assert item["principal_name"] == want["name"], key
            assert item["principal_upn"] == want["upn"], key
            assert item["role_name"] == roles[item["role_definition_id"]]
            assert item["assignment_id"]

        per_role = Counter(key[0] for key in expected)
        direct = Counter(key[0] for key in expected if key[3] == "Direct")
        sim_direct = Counter(
            a["role_definition_id"]
            for a in state["active_assignments"]
            if a["assignment_type"] == "Assigned" and a["end"] is None
        )
        assert direct == sim_direct
        assert {r["role_definition_id"]: r["count"] for r in body["by_role"]} == dict(per_role)
        assert all(r["role_name"] == roles[r["role_definition_id"]] for r in body["by_role"])
        counts = [r["count"] for r in body["by_role"]]
        assert counts == sorted(counts, reverse=True)

    @pytest.mark.parametrize("limit", [1, 7, 50])
    def test_paging_returns_each_item_once(
        self, client: TestClient, tokens: Headers, started_plan: str, limit: int
    ) -> None:
        url = f"/api/v1/plans/{started_plan}/baseline"
        whole = client.get(url, params={"limit": 10000}, headers=tokens["viewer"]).json()
        keys = [key_of(i) for i in all_pages(client, url, tokens["viewer"], limit)]
        assert len(set(keys)) == len(keys) == whole["item_count"]
        assert keys == [key_of(i) for i in whole["items"]]

    def test_the_tenant_latest_inventory_is_the_baseline(
        self, client: TestClient, tokens: Headers, tenant_id: str, started_plan: str
    ) -> None:
        baseline = client.get(
            f"/api/v1/plans/{started_plan}/baseline", headers=tokens["viewer"]
        ).json()
        latest = client.get(
            f"/api/v1/tenants/{tenant_id}/inventory/latest", headers=tokens["viewer"]
        )
        assert latest.status_code == 200
        assert latest.json() == baseline

        taken = client.post(f"/api/v1/tenants/{tenant_id}/inventory", headers=tokens["operator"])
        assert taken.status_code == 201, taken.text
        assert taken.json()["id"] != baseline["id"]
        assert taken.json()["plan_id"] is None
        assert {key_of(i) for i in taken.json()["items"]} == {key_of(i) for i in baseline["items"]}
        # A later tenant-wide inventory does not replace the plan's baseline.
        again = client.get(f"/api/v1/plans/{started_plan}/baseline", headers=tokens["viewer"])
        assert again.json()["id"] == baseline["id"]
        newest = client.get(
            f"/api/v1/tenants/{tenant_id}/inventory/latest", headers=tokens["viewer"]
        ).json()
        assert newest["id"] == taken.json()["id"]


def state_roles(sim: TestClient) -> list[dict[str, Any]]:
    response = sim.get(
        "/v1.0/roleManagement/directory/roleDefinitions",
        headers={"Authorization": "Bearer test"},
    )
    assert response.status_code == 200, response.text
    return [{"id": r["id"], "display_name": r["displayName"]} for r in response.json()["value"]]


class TestErrors:
    def test_unknown_plan_is_404_problem(self, client: TestClient, tokens: Headers) -> None:
        response = client.get("/api/v1/plans/no-such-plan/baseline", headers=tokens["viewer"])
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == 404
        assert "no-such-plan" in body["detail"]

    def test_plan_not_started_has_no_baseline(
        self, client: TestClient, tokens: Headers, tenant_id: str
    ) -> None:
        plan = client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant_id, "template": "default"},
            headers=tokens["operator"],
        ).json()
        response = client.get(f"/api/v1/plans/{plan['id']}/baseline", headers=tokens["viewer"])
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "no baseline yet" in response.json()["detail"]

    def test_unknown_tenant_inventory_is_404(self, client: TestClient, tokens: Headers) -> None:
        response = client.get(
            "/api/v1/tenants/no-such-tenant/inventory/latest", headers=tokens["viewer"]
        )
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    def test_tenant_without_inventory_is_404(
        self, client: TestClient, tokens: Headers, tenant_id: str
    ) -> None:
        response = client.get(
            f"/api/v1/tenants/{tenant_id}/inventory/latest", headers=tokens["viewer"]
        )
        assert response.status_code == 404
        assert "no inventory yet" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": 0}, "query.limit"),
            ({"limit": 10001}, "query.limit"),
            ({"limit": "ten"}, "query.limit"),
            ({"offset": -1}, "query.offset"),
            ({"offset": "x"}, "query.offset"),
        ],
    )
    def test_bad_paging_names_the_field(
        self,
        client: TestClient,
        tokens: Headers,
        started_plan: str,
        tenant_id: str,
        params: dict[str, Any],
        field: str,
    ) -> None:
        for url in (
            f"/api/v1/plans/{started_plan}/baseline",
            f"/api/v1/tenants/{tenant_id}/inventory/latest",
        ):
            response = client.get(url, params=params, headers=tokens["viewer"])
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert [e["path"] for e in body["errors"]] == [field]
            assert field in body["detail"]

    def test_unauthenticated_is_401(self, client: TestClient, started_plan: str) -> None:
        response = client.get(f"/api/v1/plans/{started_plan}/baseline")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


class TestLargeInventory:
    def test_pages_smaller_than_asked_are_all_read_and_every_field_kept(
        self, client: TestClient, tokens: Headers, sim: TestClient, tenant_id: str
    ) -> None:
        # Graph may answer fewer items than $top asks for: every role spans many pages here,
        # and the items are inserted in chunks across those page boundaries.
        assert sim.put("/_sim/faults", json={"max_page_size": 3}).status_code == 200
        sim.delete("/_sim/request-log")
        taken = client.post(
            f"/api/v1/tenants/{tenant_id}/inventory",
            params={"limit": 10000},
            headers=tokens["operator"],
        )
        assert taken.status_code == 201, taken.text
        log = sim.get("/_sim/request-log").json()["requests"]
        assert sim.put("/_sim/faults", json={"max_page_size": 999}).status_code == 200
        assert sum("$skiptoken" in e["url"] for e in log) > 10
        assert all("$top=999" in e["url"] for e in log if "Instances" in e["url"])
        body = client.get(
            f"/api/v1/tenants/{tenant_id}/inventory/latest",
            params={"limit": 10000},
            headers=tokens["viewer"],
        ).json()
        state = sim.get("/_sim/state").json()
        expected = expected_items(state)
        items = {key_of(i): i for i in body["items"]}
        assert len(items) == len(body["items"]) == body["item_count"]
        assert set(items) == set(expected)
        roles = {r["id"]: r["display_name"] for r in state_roles(sim)}
        outside = {
            (a["role_definition_id"], a["principal_id"]): a["start"] is None
            for a in state["active_assignments"]
        }
        for key, item in items.items():
            want = expected[key]
            assert item["principal_type"] == want["type"], key
            assert item["principal_name"] == want["name"], key
            assert item["principal_upn"] == want["upn"], key
            assert item["role_name"] == roles[item["role_definition_id"]], key
            assert item["assignment_id"], key
            if key[3] == "Direct":
                assert item["created_outside_pim"] is outside[(key[0], key[1])], key
