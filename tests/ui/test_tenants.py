"""Tenant pages: configuration without secrets, inventory, freeze, adding a tenant."""

from __future__ import annotations

import json
from typing import Any

from app.services import tenants
from app.services.context import AppContext
from tests.ui.conftest import SIM_URL, Ui, context_of, template_of


class TestTenantList:
    def test_empty_state_for_an_admin(self, as_admin: Ui) -> None:
        response = as_admin.client.get("/ui/tenants")
        assert template_of(response) == "tenants/list.html"
        assert context_of(response)["tenants"] == []
        assert "No tenants yet" in response.text
        assert 'href="/ui/tenants/new"' in response.text

    def test_operator_cannot_add(self, as_operator: Ui) -> None:
        response = as_operator.client.get("/ui/tenants")
        assert context_of(response)["can_add"] is False
        assert "/ui/tenants/new" not in response.text
        assert as_operator.client.get("/ui/tenants/new").status_code == 403

    def test_lists_tenants_with_plan_counts(
        self, as_viewer: Ui, tenant_id: str, plan_id: str
    ) -> None:
        response = as_viewer.client.get("/ui/tenants")
        assert [t.id for t in context_of(response)["tenants"]] == [tenant_id]
        assert context_of(response)["plan_counts"] == {tenant_id: 1}
        assert context_of(response)["automation"][tenant_id] == "Automatic progression at any time"


class TestTenantDetail:
    def test_shows_configuration_but_no_secret(
        self, as_admin: Ui, ctx: AppContext, sim_profile: dict[str, Any]
    ) -> None:
        body = {
            **sim_profile,
            "name": "With a secret",
            "graph_base_url": "https://graph.microsoft.com/v1.0",
            "auth": {
                "kind": "client_secret",
                "tenant_id": "8c2f3a31-8d6c-4f6b-9d6d-7c1f0e9b1a11",
                "client_id": "4b1d5f0e-2f0b-4c6a-8d8e-3f4a5b6c7d8e",
                "client_secret": "s3cret-value-never-shown",
            },
        }
        created = as_admin.post("/ui/tenants", body=json.dumps(body))
        assert created.status_code == 303
        response = as_admin.client.get(created.headers["location"])
        assert template_of(response) == "tenants/detail.html"
        assert context_of(response)["has_secret"] is True
        assert "client_secret" not in context_of(response)["auth_public"]
        assert "s3cret-value-never-shown" not in response.text
        assert "4b1d5f0e-2f0b-4c6a-8d8e-3f4a5b6c7d8e" in response.text
        assert "stored encrypted (never shown)" in response.text
        for binding in sim_profile["bindings"]:
            assert binding in response.text

    def test_viewer_sees_no_buttons(self, as_viewer: Ui, tenant_id: str) -> None:
        response = as_viewer.client.get(f"/ui/tenants/{tenant_id}")
        assert context_of(response)["can_operate"] is False
        assert "Take inventory now" not in response.text
        assert "Freeze automatic progression" not in response.text


class TestInventory:
    def test_operator_takes_an_inventory(self, as_operator: Ui, tenant_id: str) -> None:
        response = as_operator.post(f"/ui/tenants/{tenant_id}/inventory")
        assert response.status_code == 303
        page = as_operator.client.get(response.headers["location"])
        (message,) = context_of(page)["flashes"]
        assert message.title.startswith("Inventory taken: ")
        inventory = context_of(page)["inventory"]
        assert inventory.pager.total > 0
        assert sum(r.count for r in inventory.by_role) == inventory.pager.total
        assert "Global Administrator" in {r.role_name for r in inventory.by_role}
        if inventory.pager.pages > 1:
            second = as_operator.client.get(f"/ui/tenants/{tenant_id}?page=2")
            assert context_of(second)["inventory"].pager.page == 2

    def test_viewer_cannot(self, as_viewer: Ui, tenant_id: str) -> None:
        response = as_viewer.post(f"/ui/tenants/{tenant_id}/inventory")
        assert response.status_code == 403
        assert context_of(as_viewer.client.get(f"/ui/tenants/{tenant_id}"))["inventory"] is None


class TestFreeze:
    def test_admin_freezes_and_thaws(self, as_admin: Ui, ctx: AppContext, tenant_id: str) -> None:
        as_admin.post(f"/ui/tenants/{tenant_id}/automation", frozen="yes")
        with ctx.session_factory() as session:
            assert tenants.get_tenant(session, tenant_id).automation["frozen"] is True
        page = as_admin.client.get(f"/ui/tenants/{tenant_id}")
        assert context_of(page)["automation_label"] == "Frozen: no automatic progression"
        assert "Unfreeze automatic progression" in page.text
        as_admin.post(f"/ui/tenants/{tenant_id}/automation", frozen="no")
        with ctx.session_factory() as session:
            assert tenants.get_tenant(session, tenant_id).automation["frozen"] is False

    def test_operator_cannot(self, as_operator: Ui, ctx: AppContext, tenant_id: str) -> None:
        response = as_operator.post(f"/ui/tenants/{tenant_id}/automation", frozen="yes")
        assert response.status_code == 403
        assert "needs the admin role" in context_of(response)["detail"]
        with ctx.session_factory() as session:
            assert not tenants.get_tenant(session, tenant_id).automation.get("frozen")


class TestAddTenant:
    def test_admin_adds_the_simulated_tenant(
        self, as_admin: Ui, sim_profile: dict[str, Any]
    ) -> None:
        body = {**sim_profile, "name": "Fabrikam", "graph_base_url": SIM_URL}
        response = as_admin.post("/ui/tenants", body=json.dumps(body))
        assert response.status_code == 303
        page = as_admin.client.get(response.headers["location"])
        assert context_of(page)["tenant"].name == "Fabrikam"
        assert context_of(page)["flashes"][0].title == "Tenant “Fabrikam” added."

    def test_invalid_tenant_lists_every_problem_and_echoes_no_secret(self, as_admin: Ui) -> None:
        body = {
            "name": "Bad",
            "graph_base_url": "http://graph.example.org/v1.0",
            "auth": {"kind": "client_secret", "client_secret": "do-not-echo"},
        }
        response = as_admin.post("/ui/tenants", body=json.dumps(body))
        assert response.status_code == 422
        assert template_of(response) == "tenants/new.html"
        problems = context_of(response)["problems"]
        assert any(p.startswith("graph_base_url") for p in problems)
        assert any("auth" in p for p in problems)
        assert "do-not-echo" not in response.text

    def test_not_json(self, as_admin: Ui) -> None:
        response = as_admin.post("/ui/tenants", body="name: yaml?")
        assert response.status_code == 422
        assert context_of(response)["problems"]

    def test_duplicate_name(
        self, as_admin: Ui, tenant_id: str, sim_profile: dict[str, Any]
    ) -> None:
        body = {**sim_profile, "name": "Contoso (simulated)", "graph_base_url": SIM_URL}
        response = as_admin.post("/ui/tenants", body=json.dumps(body))
        assert response.status_code == 422
        assert "already exists" in context_of(response)["errors"]["body"]

    def test_operator_cannot_add(self, as_operator: Ui, sim_profile: dict[str, Any]) -> None:
        body = {**sim_profile, "name": "Nope", "graph_base_url": SIM_URL}
        assert as_operator.post("/ui/tenants", body=json.dumps(body)).status_code == 403
        assert context_of(as_operator.client.get("/ui/tenants"))["tenants"] == []
