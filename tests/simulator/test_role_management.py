"""``/roleManagement/directory`` reads: definitions, assignments, schedules, instances, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from app.simulator import catalog
from app.simulator.builders import add_outside_pim_assignment, new_state
from app.simulator.state import SimState, User
from tests.simulator.conftest import (
    GA,
    HELPDESK_ADMIN,
    PRA,
    RM,
    USER_ADMIN,
    Sim,
    SimFactory,
    assign_body,
    holder,
)

# Every id below was checked against the Entra built-in roles page (permissions-reference.md).
REQUIRED_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "b0f54661-2d74-4c50-afa3-1ec803f12efe": "Billing Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "4a5d8f65-41da-4de4-8968-e035b65339cf": "Reports Reader",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "58a13ea3-c632-46ae-9ee0-9c0d43cd7f3d": "Attribute Assignment Administrator",
    "8424c6f0-a189-499e-bbd0-26c1753c96d4": "Attribute Definition Administrator",
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b": "Directory Readers",
    "95e79109-95c0-4d8e-aee3-d01accf2d47b": "Guest Inviter",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "69091246-20e8-4a56-aa4d-066075b2a7a8": "Teams Administrator",
    "17315797-102d-40b4-93e0-432062caca18": "Compliance Administrator",
    "0526716b-113d-4c15-b2c8-68e3c22b9f80": "Authentication Policy Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "31392ffb-586c-42d1-9346-e59415a2cc4e": "Exchange Recipient Administrator",
    "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b": "Message Center Reader",
    "75934031-6c7e-415a-99d7-48dbd49e875e": "Usage Summary Reports Reader",
}


class TestRoleDefinitions:
    async def test_built_in_roles_carry_their_real_template_ids(self, sim: Sim) -> None:
        roles = await sim.get_all(f"{RM}/roleDefinitions")
        by_id = {r["id"]: r for r in roles}
        for role_id, name in REQUIRED_ROLES.items():
            assert by_id[role_id]["displayName"] == name
            assert by_id[role_id]["templateId"] == role_id
            assert by_id[role_id]["isBuiltIn"]

    async def test_filter_by_display_name_and_in(self, sim: Sim) -> None:
        one = await sim.get(f"{RM}/roleDefinitions?$filter=displayName eq 'Global Administrator'")
        assert [r["id"] for r in one.json()["value"]] == [GA]
        two = await sim.get(f"{RM}/roleDefinitions?$filter=id in ('{GA}', '{PRA}')")
        assert {r["id"] for r in two.json()["value"]} == {GA, PRA}

    async def test_select_limits_properties(self, sim: Sim) -> None:
        response = await sim.get(f"{RM}/roleDefinitions?$select=id,displayName&$top=2")
        assert all(set(r) == {"id", "displayName"} for r in response.json()["value"])

    async def test_get_one_and_missing_one(self, sim: Sim) -> None:
        assert (await sim.get(f"{RM}/roleDefinitions/{GA}")).json()[
            "displayName"
        ] == "Global Administrator"
        missing = await sim.get(f"{RM}/roleDefinitions/00000000-0000-0000-0000-000000000001")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "Request_ResourceNotFound"

    async def test_unsupported_filter_property_is_400(self, sim: Sim) -> None:
        response = await sim.get(f"{RM}/roleDefinitions?$filter=isPrivileged eq true")
        assert response.status_code == 400  # isPrivileged is beta-only (reference §3)


class TestRoleAssignments:
    async def test_filter_by_role_with_principal_expanded(self, sim: Sim) -> None:
        response = await sim.get(
            f"{RM}/roleAssignments?$filter=roleDefinitionId eq '{GA}'&$expand=principal"
        )
        body = response.json()
        assert body["@odata.context"].endswith(
            "#roleManagement/directory/roleAssignments(principal())"
        )
        holders = {a["principalId"] for a in body["value"]}
        assert set(sim.state.profile.break_glass_ids) <= holders
        for item in body["value"]:
            assert item["roleDefinitionId"] == GA
            assert item["principal"]["id"] == item["principalId"]
            assert item["principal"]["@odata.type"] == "#microsoft.graph.user"

    async def test_expand_principal_types_groups_and_service_principals(self, sim: Sim) -> None:
        items = await sim.get_all(f"{RM}/roleAssignments?$expand=principal")
        types = {a["principal"]["@odata.type"] for a in items}
        assert types == {
            "#microsoft.graph.user",
            "#microsoft.graph.group",
            "#microsoft.graph.servicePrincipal",
        }

    async def test_filter_by_principal(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        body = (await sim.get(f"{RM}/roleAssignments?$filter=principalId eq '{principal}'")).json()
        assert body["value"]
        assert all(a["principalId"] == principal for a in body["value"])

    async def test_shows_only_active_not_eligible(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        response = await sim.request("eligibility", assign_body(principal, catalog.REPORTS_READER))
        assert response.status_code == 201
        body = (await sim.get(f"{RM}/roleAssignments?$filter=principalId eq '{principal}'")).json()
        assert catalog.REPORTS_READER not in {a["roleDefinitionId"] for a in body["value"]}

    async def test_get_one_by_id(self, sim: Sim) -> None:
        first = (await sim.get(f"{RM}/roleAssignments?$top=1")).json()["value"][0]
        again = (await sim.get(f"{RM}/roleAssignments/{first['id']}")).json()
        assert again["principalId"] == first["principalId"]
        assert (await sim.get(f"{RM}/roleAssignments/bm90LWFuLWlk-1")).status_code == 404

    async def test_in_filter_documented_on_role_assignments(self, sim: Sim) -> None:
        response = await sim.get(
            f"{RM}/roleAssignments?$filter=roleDefinitionId in ('{GA}','{PRA}')"
        )
        assert {a["roleDefinitionId"] for a in response.json()["value"]} == {GA, PRA}


class TestSchedulesAndInstances:
    async def test_outside_pim_assignment_looks_as_documented(self, sim: Sim) -> None:
        principal = holder(sim.state, GA)
        schedules = (
            await sim.get(f"{RM}/roleAssignmentSchedules?$filter=principalId eq '{principal}'")
        ).json()["value"]
        schedule = next(s for s in schedules if s["roleDefinitionId"] == GA)
        assert schedule["id"].endswith("-1")
        assert schedule["createdUsing"] is None
        assert schedule["createdDateTime"] is None
        assert schedule["assignmentType"] == "Assigned"
        assert schedule["memberType"] == "Direct"
        assert schedule["scheduleInfo"]["expiration"]["type"] == "noExpiration"
        assert schedule["status"] == "Provisioned"
        instances = (
            await sim.get(
                f"{RM}/roleAssignmentScheduleInstances?$filter=principalId eq '{principal}' "
                f"and roleDefinitionId eq '{GA}'"
            )
        ).json()["value"]
        (instance,) = instances
        assert instance["startDateTime"] is None
        assert instance["endDateTime"] is None
        assert (
            instance["roleAssignmentOriginId"]
            == instance["roleAssignmentScheduleId"]
            == instance["id"]
        )

    async def test_pim_created_assignment_has_guid_and_created_using(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        created = (
            await sim.request("assignment", assign_body(principal, catalog.REPORTS_READER))
        ).json()
        schedule = (
            await sim.get(f"{RM}/roleAssignmentSchedules/{created['targetScheduleId']}")
        ).json()
        assert schedule["id"] == created["id"] == schedule["createdUsing"]
        assert schedule["createdDateTime"] is not None

    async def test_inventory_query_of_the_reference(self, sim: Sim) -> None:
        url = (
            f"{RM}/roleAssignmentScheduleInstances?$filter=roleDefinitionId eq '{GA}' and "
            "assignmentType eq 'Assigned' and memberType eq 'Direct'&$expand=principal"
        )
        items = await sim.get_all(url)
        assert items
        assert all(i["principal"]["id"] == i["principalId"] for i in items)

    async def test_group_members_appear_as_group_member_type(self, sim: Sim) -> None:
        group_id = holder(sim.state, HELPDESK_ADMIN, kind="group")
        group = sim.state.groups[group_id]
        items = await sim.get_all(
            f"{RM}/roleAssignmentScheduleInstances?$filter=roleDefinitionId eq '{HELPDESK_ADMIN}'"
        )
        direct = [i for i in items if i["principalId"] == group_id]
        assert direct
        assert direct[0]["memberType"] == "Direct"
        members = [i for i in items if i["memberType"] == "Group"]
        assert {i["principalId"] for i in members} == set(group.member_ids)
        assert all(i["roleAssignmentOriginId"] == direct[0]["id"] for i in members)
        by_member = await sim.get(
            f"{RM}/roleAssignmentScheduleInstances?$filter=principalId eq '{group.member_ids[0]}' "
            "and memberType eq 'Group'"
        )
        assert len(by_member.json()["value"]) == 1

    async def test_select_and_expand_role_definition(self, sim: Sim) -> None:
        response = await sim.get(
            f"{RM}/roleAssignmentSchedules?$select=id,principalId&$expand=roleDefinition&$top=1"
        )
        item = response.json()["value"][0]
        assert set(item) == {"id", "principalId", "roleDefinition"}
        assert item["roleDefinition"]["templateId"]

    async def test_in_is_not_documented_on_schedules(self, sim: Sim) -> None:
        response = await sim.get(
            f"{RM}/roleAssignmentScheduleInstances?$filter=principalId in ('a')"
        )
        assert response.status_code == 400

    async def test_unknown_expand_is_400(self, sim: Sim) -> None:
        response = await sim.get(f"{RM}/roleEligibilitySchedules?$expand=manager")
        assert response.status_code == 400

    async def test_eligibility_instances_use_eligible_id_shape(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        created = (await sim.request("eligibility", assign_body(principal, USER_ADMIN))).json()
        instances = (
            await sim.get(
                f"{RM}/roleEligibilityScheduleInstances?$filter=principalId eq '{principal}'"
            )
        ).json()["value"]
        (instance,) = instances
        assert instance["id"].endswith("-1-e")
        assert instance["roleEligibilityScheduleId"] == created["targetScheduleId"]
        assert "assignmentType" not in instance

    async def test_missing_schedule_is_404(self, sim: Sim) -> None:
        assert (await sim.get(f"{RM}/roleEligibilitySchedules/nope")).status_code == 404
        assert (await sim.get(f"{RM}/roleAssignmentScheduleInstances/nope")).status_code == 404

    async def test_pim_reads_need_p2(self, make_sim: SimFactory, tenant: SimState) -> None:
        tenant.p2 = False
        sim = await make_sim(tenant)
        response = await sim.get(f"{RM}/roleAssignmentScheduleInstances")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "AadPremiumLicenseRequired"
        assert (await sim.get(f"{RM}/roleAssignments")).status_code == 200  # directory read


def _big_tenant(count: int) -> SimState:
    state = new_state(
        tenant_id="5b8f7c0d-1e2a-4f43-9a3e-2f6a6c5e1c1b",
        tenant_name="Big",
        domain="big.example",
        created_at=datetime(2023, 1, 1, tzinfo=UTC),
        seed=4,
        p2=True,
    )
    roles = [r.id for r in catalog.BUILT_IN_ROLES]
    for n in range(count):
        user = state.add_user(
            User(
                id=state.ids.guid(),
                display_name=f"User {n}",
                user_principal_name=f"u{n}@big.example",
            )
        )
        add_outside_pim_assignment(
            state, user.id, roles[n % len(roles)], at=datetime(2023, 2, 1, tzinfo=UTC)
        )
    return state


class TestPaging:
    async def test_ten_thousand_assignments_each_exactly_once(self, make_sim: SimFactory) -> None:
        sim = await make_sim(_big_tenant(10_000))
        items = await sim.get_all(f"{RM}/roleAssignments")
        ids = [i["id"] for i in items]
        assert len(ids) == 10_000 == len(set(ids))
        instances = await sim.get_all(f"{RM}/roleAssignmentScheduleInstances?$top=999")
        assert len({i["id"] for i in instances}) == len(instances) == 10_000

    async def test_next_link_is_absolute_and_keeps_the_query(self, make_sim: SimFactory) -> None:
        sim = await make_sim(_big_tenant(250))
        body = (
            await sim.get(f"{RM}/roleAssignments?$filter=roleDefinitionId eq '{GA}'&$top=3")
        ).json()
        link = body["@odata.nextLink"]
        parts = urlsplit(link)
        assert parts.scheme == "http"
        assert parts.netloc == "sim"
        assert parts.path.startswith("/v1.0/")
        assert "$skiptoken=" in link
        assert "$top=3" in link
        nxt = (await sim.get(link)).json()
        assert all(a["roleDefinitionId"] == GA for a in nxt["value"])
        assert {a["id"] for a in nxt["value"]}.isdisjoint({a["id"] for a in body["value"]})

    async def test_count_on_request(self, make_sim: SimFactory) -> None:
        sim = await make_sim(_big_tenant(150))
        body = (await sim.get(f"{RM}/roleAssignments?$count=true&$top=5")).json()
        assert body["@odata.count"] == 150
        assert len(body["value"]) == 5

    async def test_default_page_is_one_hundred(self, make_sim: SimFactory) -> None:
        sim = await make_sim(_big_tenant(150))
        body = (await sim.get(f"{RM}/roleAssignments")).json()
        assert len(body["value"]) == 100
        assert "@odata.nextLink" in body

    @pytest.mark.parametrize("top", ["0", "1000", "x"])
    async def test_bad_top_is_400(self, sim: Sim, top: str) -> None:
        assert (await sim.get(f"{RM}/roleAssignments?$top={top}")).status_code == 400
