"""Tenant generation, files and inventory import."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.simulator import catalog
from app.simulator.catalog import (
    GLOBAL_ADMINISTRATOR,
    HIGH_IMPACT_ROLES,
    PRIVILEGED_ROLE_ADMINISTRATOR,
)
from app.simulator.seed import generate_tenant, load_tenant, save_tenant, tenant_from_inventory
from app.simulator.snapshot import state_to_dict
from app.simulator.state import SimState, User


def _roles_of(state: SimState, principal_id: str) -> set[str]:
    return {s.role_definition_id for s in state.actives.for_principal(principal_id)}


def _members(state: SimState, binding: str) -> list[str]:
    return state.groups[state.profile.bindings[binding]["id"]].member_ids


class TestGenerateTenant:
    def test_same_seed_same_tenant(self) -> None:
        assert state_to_dict(generate_tenant(seed=5)) == state_to_dict(generate_tenant(seed=5))

    def test_different_seed_different_tenant(self) -> None:
        assert generate_tenant(seed=5).tenant_id != generate_tenant(seed=6).tenant_id

    def test_counts_and_guests(self) -> None:
        state = generate_tenant(users=200, admins=30)
        assert len(state.users) == 200
        guests = [u for u in state.users.values() if u.user_type == "Guest"]
        assert guests
        assert all("#EXT#" in u.user_principal_name and not u.has_mailbox for u in guests)
        assert len({u.user_principal_name.lower() for u in state.users.values()}) == 200

    def test_assignments_are_permanent_and_made_outside_pim(self) -> None:
        state = generate_tenant()
        assert state.actives
        assert not state.eligibles
        for schedule in state.actives:
            assert schedule.outside_pim
            assert schedule.start is None
            assert schedule.end is None
            assert schedule.id.endswith("-1")

    def test_break_glass_hold_only_permanent_global_administrator(self) -> None:
        state = generate_tenant()
        assert len(state.profile.break_glass_ids) == 2
        for user_id in state.profile.break_glass_ids:
            assert _roles_of(state, user_id) == {GLOBAL_ADMINISTRATOR}
            assert not any(user_id in g.member_ids for g in state.groups.values())

    def test_security_team_holds_no_global_administrator(self) -> None:
        state = generate_tenant()
        members = _members(state, "security_team")
        assert len(members) >= 3
        assert all(GLOBAL_ADMINISTRATOR not in _roles_of(state, m) for m in members)

    def test_managers_hold_no_target_role(self) -> None:
        state = generate_tenant()
        members = _members(state, "managers")
        assert len(members) >= 3
        assert all(not _roles_of(state, m) & set(HIGH_IMPACT_ROLES) for m in members)

    def test_platform_team_are_admins_holding_target_roles(self) -> None:
        state = generate_tenant(admins=40)
        members = _members(state, "it_platform_team")
        assert 2 <= len(members) <= 8
        assert all(_roles_of(state, m) & set(HIGH_IMPACT_ROLES) for m in members)

    def test_role_owners_do_not_hold_their_role(self) -> None:
        state = generate_tenant()
        owners = state.profile.bindings["role_owners"]
        assert set(owners["owners"]) == set(HIGH_IMPACT_ROLES)
        for role_id, user_id in owners["owners"].items():
            held = _roles_of(state, user_id)
            for group in state.groups_containing(user_id):
                held |= _roles_of(state, group.id)
            assert role_id not in held
        assert owners["fallback"] in state.users

    def test_every_target_role_is_held_and_pra_by_a_user(self) -> None:
        state = generate_tenant(admins=30)
        held = {s.role_definition_id for s in state.actives}
        assert set(HIGH_IMPACT_ROLES) <= held
        pra = [s.principal_id for s in state.actives.for_role(PRIVILEGED_ROLE_ADMINISTRATOR)]
        assert any(p in state.users for p in pra)
        ga_users = [s.principal_id for s in state.actives.for_role(GLOBAL_ADMINISTRATOR)]
        assert len(set(ga_users) - set(state.profile.break_glass_ids)) >= 2

    def test_service_principals_and_role_assignable_group_hold_target_roles(self) -> None:
        state = generate_tenant()
        sp_roles = {
            s.role_definition_id
            for s in state.actives
            if s.principal_id in state.service_principals
        }
        assert catalog.APPLICATION_ADMINISTRATOR in sp_roles
        groups = [s for s in state.actives if s.principal_id in state.groups]
        assert groups
        group = state.groups[groups[0].principal_id]
        assert group.is_assignable_to_role
        assert len(group.member_ids) >= 2

    def test_sender_has_a_mailbox_and_helpdesk_is_bound(self) -> None:
        state = generate_tenant()
        sender = state.users[state.profile.comms["sender"]]
        assert sender.has_mailbox
        assert sender.mail
        assert state.profile.bindings["helpdesk"]["ids"][0] in state.users

    def test_some_admins_are_synced_from_on_premises_and_break_glass_is_cloud_only(
        self,
    ) -> None:
        state = generate_tenant(users=200, admins=30)
        holders = {s.principal_id for s in state.actives}
        synced_admins = [
            u for u in state.users.values() if u.id in holders and u.on_premises_sync_enabled
        ]
        assert len(synced_admins) == 6
        for user_id in state.profile.break_glass_ids:
            assert state.users[user_id].on_premises_sync_enabled is None
        guests = [u for u in state.users.values() if u.user_type == "Guest"]
        assert all(u.on_premises_sync_enabled is None for u in guests)

    def test_p2_switch_changes_the_licences(self) -> None:
        with_p2 = {p for s in generate_tenant(p2=True).skus for _, p, _ in s.template.plans}
        without = {p for s in generate_tenant(p2=False).skus for _, p, _ in s.template.plans}
        assert "AAD_PREMIUM_P2" in with_p2
        assert "AAD_PREMIUM_P2" not in without

    def test_two_thousand_users_generate_fast(self) -> None:
        started = time.perf_counter()
        state = generate_tenant(users=2000, admins=150, seed=3)
        assert time.perf_counter() - started < 2.0
        assert len(state.users) == 2000

    def test_too_few_users_are_refused(self) -> None:
        with pytest.raises(ValueError, match="at least admins"):
            generate_tenant(users=20, admins=15)


class TestFiles:
    @pytest.mark.parametrize("suffix", [".json", ".yaml"])
    def test_round_trip_preserves_everything(self, tmp_path: Path, suffix: str) -> None:
        state = generate_tenant(seed=9)
        path = tmp_path / f"tenant{suffix}"
        save_tenant(state, path)
        loaded = load_tenant(path)
        assert state_to_dict(loaded) == state_to_dict(state)

    def test_reloaded_tenant_mints_fresh_ids(self, tmp_path: Path) -> None:
        state = generate_tenant(seed=9)
        path = tmp_path / "tenant.json"
        save_tenant(state, path)
        existing = {*state.users, *state.groups, *state.service_principals, *state.policies}
        assert load_tenant(path).ids.guid() not in existing

    def test_wrong_format_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "x.json"
        path.write_text('{"format": "something-else"}')
        with pytest.raises(ValueError, match="not a simulated tenant"):
            load_tenant(path)


SNAPSHOT = {
    "format": "pim-rollout.inventory/v1",
    "tenant_id": "2f6a6c5e-1c1b-4f43-9a3e-5b8f7c0d1e2a",
    "taken_at": "2025-01-02T10:00:00Z",
    "items": [
        {
            "role_definition_id": GLOBAL_ADMINISTRATOR,
            "role_display_name": "Global Administrator",
            "principal_id": "11111111-1111-4111-8111-111111111111",
            "principal_type": "user",
            "principal_display_name": "Ada Admin",
            "principal_user_principal_name": "ada@fabrikam.com",
            "directory_scope_id": "/",
            "assignment_id": "x-1",
            "created_outside_pim": True,
        },
        {
            "role_definition_id": catalog.USER_ADMINISTRATOR,
            "role_display_name": "User Administrator",
            "principal_id": "22222222-2222-4222-8222-222222222222",
            "principal_type": "group",
            "principal_display_name": "User Admins",
            "principal_user_principal_name": None,
            "directory_scope_id": "/",
            "assignment_id": "y-1",
            "created_outside_pim": True,
        },
        {
            "role_definition_id": catalog.APPLICATION_ADMINISTRATOR,
            "role_display_name": "Application Administrator",
            "principal_id": "33333333-3333-4333-8333-333333333333",
            "principal_type": "servicePrincipal",
            "principal_display_name": "Deploy Bot",
            "principal_user_principal_name": None,
            "directory_scope_id": "/",
            "assignment_id": "44444444-4444-4444-8444-444444444444",
            "created_outside_pim": False,
        },
    ],
    "groups": [
        {
            "id": "22222222-2222-4222-8222-222222222222",
            "display_name": "User Admins",
            "member_ids": ["55555555-5555-4555-8555-555555555555"],
        }
    ],
    "break_glass_ids": ["11111111-1111-4111-8111-111111111111"],
}


class TestFromInventory:
    def test_items_become_permanent_active_assignments(self) -> None:
        state = tenant_from_inventory(SNAPSHOT)
        assert state.tenant_id == SNAPSHOT["tenant_id"]
        assert state.p2
        held = {(s.principal_id, s.role_definition_id): s for s in state.actives}
        assert len(held) == 3
        assert all(s.end is None for s in held.values())
        ada = held[("11111111-1111-4111-8111-111111111111", GLOBAL_ADMINISTRATOR)]
        assert ada.outside_pim
        bot = held[("33333333-3333-4333-8333-333333333333", catalog.APPLICATION_ADMINISTRATOR)]
        assert not bot.outside_pim
        assert bot.id == "44444444-4444-4444-8444-444444444444"

    def test_principals_are_created_with_their_kinds(self) -> None:
        state = tenant_from_inventory(SNAPSHOT)
        assert (
            state.users["11111111-1111-4111-8111-111111111111"].user_principal_name
            == "ada@fabrikam.com"
        )
        group = state.groups["22222222-2222-4222-8222-222222222222"]
        assert group.is_assignable_to_role
        assert group.member_ids == ["55555555-5555-4555-8555-555555555555"]
        assert "55555555-5555-4555-8555-555555555555" in state.users
        assert "33333333-3333-4333-8333-333333333333" in state.service_principals
        assert state.domain == "fabrikam.com"
        assert state.profile.break_glass_ids == ["11111111-1111-4111-8111-111111111111"]
        assert state.users[state.profile.comms["sender"]].has_mailbox

    def test_unknown_format_is_refused(self) -> None:
        with pytest.raises(ValueError, match="format"):
            tenant_from_inventory({**SNAPSHOT, "format": "v0"})


class TestHandBuiltState:
    async def test_a_directly_constructed_state_is_a_complete_tenant(self, make_sim: Any) -> None:
        state = SimState(
            tenant_id="0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
            tenant_name="Tiny",
            domain="tiny.example",
            created_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        assert len(state.policies) == len(catalog.BUILT_IN_ROLES)
        assert state.caller_app_id in {sp.app_id for sp in state.service_principals.values()}
        assert state.skus
        user = state.add_user(
            User(id=state.ids.guid(), display_name="A", user_principal_name="a@tiny.example")
        )
        sim = await make_sim(state)
        body = {
            "action": "adminAssign",
            "principalId": user.id,
            "roleDefinitionId": GLOBAL_ADMINISTRATOR,
            "directoryScopeId": "/",
            "justification": "first admin",
            "scheduleInfo": {"expiration": {"type": "noExpiration"}},
        }
        response = await sim.request("assignment", body)
        assert response.status_code == 201
