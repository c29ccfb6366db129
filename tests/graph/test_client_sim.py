"""Typed operations against the simulated tenant (in-process, ``httpx.ASGITransport``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from app.graph.client import GraphClient
from app.graph.errors import (
    GraphAlreadyExistsError,
    GraphAuthError,
    GraphBadRequestError,
    GraphDoesNotExistError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphPolicyValidationError,
)
from app.graph.models import (
    AccessReviewDefinitionCreate,
    ExpirationRule,
    MailMessage,
    ScheduleRequest,
    ScheduleRequestAction,
    ScheduleRequestCreate,
    User,
    entra_id_p2_capacity,
    has_entra_id_p2,
)
from app.settings import GraphSettings

from .conftest import FakeTime
from .sim import GLOBAL_ADMIN, REPORTS_READER, USER_ADMIN, SimTenant, make_sim


@pytest.fixture
def sim(fake_time: FakeTime) -> SimTenant:
    return make_sim(fake_time)


@pytest.fixture
async def client(sim: SimTenant, graph_settings: GraphSettings) -> AsyncIterator[GraphClient]:
    async with sim.client(graph_settings) as graph:
        yield graph


@pytest.fixture
async def state(sim: SimTenant) -> dict[str, Any]:
    result: dict[str, Any] = await sim.get("/_sim/state")
    return result


async def convertible_holder(state: dict[str, Any], role: str) -> str:
    """A user holding ``role`` actively, outside PIM, who is not a break-glass account."""
    profile_break_glass = {
        a["principal_id"]
        for a in state["active_assignments"]
        if a["principal_id"] in _break_glass(state)
    }
    for assignment in state["active_assignments"]:
        if (
            assignment["role_definition_id"] == role
            and assignment["principal_type"] == "user"
            and assignment["principal_id"] not in profile_break_glass
        ):
            return str(assignment["principal_id"])
    raise AssertionError(f"no convertible holder of {role}")


def _break_glass(state: dict[str, Any]) -> set[str]:
    return {u["id"] for u in state["users"] if u["user_principal_name"].startswith("breakglass")}


def regular_users(state: dict[str, Any], count: int) -> list[str]:
    holders = {a["principal_id"] for a in state["active_assignments"]}
    users = [
        u["id"] for u in state["users"] if u["id"] not in holders and u["user_type"] == "Member"
    ]
    return users[:count]


def assign(principal: str, role: str = REPORTS_READER, **extra: Any) -> ScheduleRequestCreate:
    return ScheduleRequestCreate.model_validate(
        {
            "action": "adminAssign",
            "principalId": principal,
            "roleDefinitionId": role,
            "justification": "PIM rollout: convert standing access",
            "scheduleInfo": {"expiration": {"type": "noExpiration"}},
            **extra,
        }
    )


def remove(principal: str, role: str = REPORTS_READER) -> ScheduleRequestCreate:
    return ScheduleRequestCreate(
        action=ScheduleRequestAction.admin_remove, principal_id=principal, role_definition_id=role
    )


class TestInventory:
    async def test_role_definitions(self, client: GraphClient) -> None:
        everything = await client.list_role_definitions()
        assert len(everything) > 20
        chosen = await client.list_role_definitions(ids=[GLOBAL_ADMIN, USER_ADMIN.upper()])
        assert {d.id for d in chosen} == {GLOBAL_ADMIN, USER_ADMIN}
        assert await client.list_role_definitions(ids=[]) == []
        ga = await client.get_role_definition(GLOBAL_ADMIN)
        assert ga.display_name == "Global Administrator"
        assert ga.template_id == ga.id

    async def test_unknown_role_definition_is_not_found(self, client: GraphClient) -> None:
        with pytest.raises(GraphNotFoundError) as caught:
            await client.get_role_definition(str(uuid.uuid4()))
        assert caught.value.request_id
        assert caught.value.client_request_id

    async def test_role_assignments_with_principals(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        expected = {
            a["principal_id"]
            for a in state["active_assignments"]
            if a["role_definition_id"] == GLOBAL_ADMIN
        }
        found = [
            a
            async for a in client.iter_role_assignments(
                role_definition_id=GLOBAL_ADMIN, expand_principal=True
            )
        ]
        assert {a.principal_id for a in found} == expected
        assert all(a.principal is not None and a.principal.id == a.principal_id for a in found)
        assert {a.principal.principal_type for a in found if a.principal} <= {"user", "group"}

    async def test_conversion_candidates(self, client: GraphClient, state: dict[str, Any]) -> None:
        instances = [
            i
            async for i in client.iter_assignment_schedule_instances(
                role_definition_id=GLOBAL_ADMIN,
                assignment_type="Assigned",
                member_type="Direct",
                expand_principal=True,
            )
        ]
        assert instances
        assert all(
            i.is_direct and not i.is_activated and i.role_definition_id == GLOBAL_ADMIN
            for i in instances
        )
        schedules = [
            s async for s in client.iter_assignment_schedules(role_definition_id=GLOBAL_ADMIN)
        ]
        outside = {
            a["schedule_id"]
            for a in state["active_assignments"]
            if a["created_outside_pim"] and a["role_definition_id"] == GLOBAL_ADMIN
        }
        assert {s.id for s in schedules if s.created_outside_pim} == outside


class TestConversion:
    async def test_convert_one_standing_assignment(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        principal = await convertible_holder(state, USER_ADMIN)

        eligible = await client.create_eligibility_request(assign(principal, USER_ADMIN))
        assert eligible.is_success
        assert (await client.get_eligibility_request(eligible.id)).status == eligible.status
        schedules = [
            s
            async for s in client.iter_eligibility_schedules(
                principal_id=principal, role_definition_id=USER_ADMIN
            )
        ]
        assert [s.created_using for s in schedules] == [eligible.id]
        instances = [
            i
            async for i in client.iter_eligibility_schedule_instances(
                principal_id=principal, role_definition_id=USER_ADMIN, member_type="Direct"
            )
        ]
        assert len(instances) == 1

        removed = await client.create_assignment_request(remove(principal, USER_ADMIN))
        assert removed.is_success
        assert removed.action_kind is ScheduleRequestAction.admin_remove
        assert (await client.get_assignment_request(removed.id)).id == removed.id
        assert [
            a
            async for a in client.iter_role_assignments(
                principal_id=principal, role_definition_id=USER_ADMIN
            )
        ] == []

        removals = [
            r
            async for r in client.iter_assignment_requests(
                principal_id=principal, action=ScheduleRequestAction.admin_remove
            )
        ]
        assert [r.id for r in removals] == [removed.id]
        assigns = [
            r
            async for r in client.iter_eligibility_requests(
                principal_id=principal, role_definition_id=USER_ADMIN, status="Provisioned"
            )
        ]
        assert [r.id for r in assigns] == [eligible.id]

    async def test_duplicate_is_already_exists(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        principal = regular_users(state, 1)[0]
        await client.create_eligibility_request(assign(principal))
        with pytest.raises(GraphAlreadyExistsError) as caught:
            await client.create_eligibility_request(assign(principal))
        assert caught.value.status == 400
        assert caught.value.code == "RoleAssignmentExists"
        assert caught.value.request_id

    async def test_removing_nothing_is_does_not_exist(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        with pytest.raises(GraphDoesNotExistError):
            await client.create_eligibility_request(remove(regular_users(state, 1)[0]))

    async def test_policy_violation_names_the_rule(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        policy = await client.get_policy_assignment(REPORTS_READER)
        rule = await client.get_policy_rule(policy.policy_id, "Expiration_Admin_Eligibility")
        assert isinstance(rule, ExpirationRule)
        await client.update_policy_rule(policy.policy_id, rule.with_maximum(timedelta(days=90)))
        with pytest.raises(GraphPolicyValidationError) as caught:
            await client.create_eligibility_request(assign(regular_users(state, 1)[0]))
        assert caught.value.failed_rules == ["ExpirationRule"]

    async def test_validation_only_creates_nothing(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        principal = regular_users(state, 1)[0]
        checked = await client.create_eligibility_request(assign(principal, isValidationOnly=True))
        assert checked.is_validation_only
        assert [s async for s in client.iter_eligibility_schedules(principal_id=principal)] == []

    async def test_cancelling_a_provisioned_request_is_refused(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        first, second = regular_users(state, 2)
        active = await client.create_assignment_request(assign(first))
        with pytest.raises(GraphBadRequestError):
            await client.cancel_assignment_request(active.id)
        eligible = await client.create_eligibility_request(assign(second))
        with pytest.raises(GraphBadRequestError):
            await client.cancel_eligibility_request(eligible.id)
        with pytest.raises(GraphNotFoundError):
            await client.cancel_eligibility_request(active.id)

    async def test_unknown_request_is_not_found(self, client: GraphClient) -> None:
        with pytest.raises(GraphNotFoundError):
            await client.get_assignment_request(str(uuid.uuid4()))

    async def test_many_conversions_through_batch(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        principals = regular_users(state, 45)
        results = await client.create_schedule_requests(
            "eligibility", [assign(p) for p in principals]
        )
        assert len(results) == 45
        assert all(isinstance(r, ScheduleRequest) and r.is_success for r in results)
        created = {
            s.principal_id
            async for s in client.iter_eligibility_schedules(role_definition_id=REPORTS_READER)
        }
        assert created >= set(principals)
        again = await client.create_schedule_requests("eligibility", [assign(principals[0])])
        assert isinstance(again[0], GraphAlreadyExistsError)


class TestPolicies:
    async def test_policy_assignment(self, client: GraphClient, state: dict[str, Any]) -> None:
        plain = await client.get_policy_assignment(GLOBAL_ADMIN)
        assert plain.policy_id == state["policies"][GLOBAL_ADMIN]["policy_id"]
        assert plain.policy is None
        expanded = await client.get_policy_assignment(GLOBAL_ADMIN, expand_rules=True)
        assert expanded.policy is not None
        assert expanded.policy.rules is not None
        assert len(expanded.policy.rules) == 17

    async def test_role_without_policy(self, client: GraphClient) -> None:
        with pytest.raises(GraphNotFoundError):
            await client.get_policy_assignment(str(uuid.uuid4()))

    async def test_snapshot_patched_back_restores_exactly(self, client: GraphClient) -> None:
        policy_id = (await client.get_policy_assignment(GLOBAL_ADMIN)).policy_id
        rules = await client.list_policy_rules(policy_id)
        assert len(rules) == 17
        snapshot = await client.get_policy_rule(policy_id, "Expiration_EndUser_Assignment")
        assert isinstance(snapshot, ExpirationRule)
        updated = await client.update_policy_rule(
            policy_id, snapshot.with_maximum(timedelta(hours=4))
        )
        assert isinstance(updated, ExpirationRule)
        assert updated.maximum_duration == "PT4H"
        await client.update_policy_rule(policy_id, snapshot)
        restored = await client.get_policy_rule(policy_id, "Expiration_EndUser_Assignment")
        assert restored.to_patch_body() == snapshot.to_patch_body()

    async def test_204_answer(self, sim: SimTenant, client: GraphClient) -> None:
        await sim.set_faults(policy_patch_status=204)
        policy_id = (await client.get_policy_assignment(GLOBAL_ADMIN)).policy_id
        rule = await client.get_policy_rule(policy_id, "Enablement_EndUser_Assignment")
        assert await client.update_policy_rule(policy_id, rule) is None


class TestAccessReviews:
    async def test_lifecycle(self, client: GraphClient, state: dict[str, Any]) -> None:
        reviewer = regular_users(state, 1)[0]
        body = AccessReviewDefinitionCreate.model_validate(
            {
                "displayName": "Quarterly review - Global Administrator",
                "descriptionForAdmins": "PIM rollout quarterly review",
                "descriptionForReviewers": "Confirm who still needs Global Administrator",
                "scope": {
                    "@odata.type": "#microsoft.graph.principalResourceMembershipsScope",
                    "principalScopes": [
                        {
                            "@odata.type": "#microsoft.graph.accessReviewQueryScope",
                            "query": "/users",
                            "queryType": "MicrosoftGraph",
                        }
                    ],
                    "resourceScopes": [
                        {
                            "@odata.type": "#microsoft.graph.accessReviewQueryScope",
                            "query": f"/roleManagement/directory/roleDefinitions/{GLOBAL_ADMIN}",
                            "queryType": "MicrosoftGraph",
                        }
                    ],
                },
                "reviewers": [{"query": f"/users/{reviewer}", "queryType": "MicrosoftGraph"}],
                "settings": {
                    "mailNotificationsEnabled": True,
                    "defaultDecisionEnabled": True,
                    "defaultDecision": "Deny",
                    "autoApplyDecisionsEnabled": True,
                    "instanceDurationInDays": 14,
                    "recurrence": {
                        "pattern": {"type": "absoluteMonthly", "interval": 3},
                        "range": {"type": "noEnd", "startDate": "2025-01-01"},
                    },
                },
            }
        )
        created = await client.create_access_review_definition(body)
        assert created.display_name == body.display_name
        assert (await client.get_access_review_definition(created.id)).id == created.id
        listed = [
            d async for d in client.iter_access_review_definitions(display_name=body.display_name)
        ]
        assert [d.id for d in listed] == [created.id]

        await client.delete_access_review_definition(created.id)
        with pytest.raises(GraphNotFoundError):
            await client.delete_access_review_definition(created.id)
        with pytest.raises(GraphNotFoundError):
            await client.get_access_review_definition(created.id)


class TestDirectoryAndLicensing:
    async def test_users_and_groups(self, client: GraphClient, state: dict[str, Any]) -> None:
        someone = state["users"][5]
        by_id = await client.get_user(someone["id"])
        by_upn = await client.get_user(someone["user_principal_name"])
        assert by_id.id == by_upn.id == someone["id"]
        assert by_id.principal_type == "user"
        group = next(g for g in state["groups"] if g["member_ids"])
        fetched = await client.get_group(group["id"])
        assert fetched.display_name == group["display_name"]
        assert fetched.principal_type == "group"
        members = {m.id async for m in client.iter_group_transitive_members(group["id"])}
        assert set(group["member_ids"]) <= members

    async def test_personal_microsoft_account_is_recognised(
        self, sim: SimTenant, client: GraphClient
    ) -> None:
        guest, other = [u for u in sim.state.users.values() if u.user_type == "Guest"][:2]
        guest.identities = [
            {"signInType": "federated", "issuer": "MicrosoftAccount", "issuerAssignedId": None}
        ]
        wanted = ("id", "identities")
        assert (await client.get_user(guest.id, select=wanted)).signs_in_with_microsoft_account
        assert not (await client.get_user(other.id, select=wanted)).signs_in_with_microsoft_account
        # Without $select Graph leaves identities out, so nothing can be concluded from it.
        assert (await client.get_user(guest.id)).identities == []

    async def test_many_users_in_batches(self, sim: SimTenant, client: GraphClient) -> None:
        guests = [u for u in sim.state.users.values() if u.user_type == "Guest"][:2]
        guests[0].identities = [
            {"signInType": "federated", "issuer": "MicrosoftAccount", "issuerAssignedId": None}
        ]
        members = [u.id for u in sim.state.users.values() if u.user_type == "Member"][:25]
        missing = "00000000-0000-0000-0000-00000000dead"
        ids = [g.id for g in guests] + members + [missing, guests[0].id]
        found = await client.get_users(ids, select=("id", "identities"))
        assert set(found) == set(ids)  # one answer per distinct id, across two batches
        first = found[guests[0].id]
        assert isinstance(first, User)
        assert first.signs_in_with_microsoft_account
        second = found[guests[1].id]
        assert isinstance(second, User)
        assert not second.signs_in_with_microsoft_account
        assert all(isinstance(found[m], User) and found[m].id == m for m in members)
        assert isinstance(found[missing], GraphNotFoundError)

    async def test_unknown_user(self, client: GraphClient) -> None:
        with pytest.raises(GraphNotFoundError):
            await client.get_user(str(uuid.uuid4()))

    async def test_directory_objects_by_id(
        self, client: GraphClient, state: dict[str, Any]
    ) -> None:
        ids = [
            state["users"][0]["id"],
            state["groups"][0]["id"],
            state["service_principals"][0]["id"],
            str(uuid.uuid4()),
        ]
        found = await client.get_directory_objects(ids + ids[:1])
        assert {(o.id, o.principal_type) for o in found} == {
            (ids[0], "user"),
            (ids[1], "group"),
            (ids[2], "servicePrincipal"),
        }
        assert await client.get_directory_objects([]) == []

    async def test_organization_and_licences(
        self, sim: SimTenant, client: GraphClient, state: dict[str, Any]
    ) -> None:
        organization = await client.get_organization()
        assert organization.id == state["tenant_id"]
        skus = await client.list_subscribed_skus()
        assert has_entra_id_p2(skus)
        assert entra_id_p2_capacity(skus) > 0
        async with sim.control() as control:
            response = await control.put("/_sim/licensing", json={"p2": False})
        assert response.status_code == 200
        assert not has_entra_id_p2(await client.list_subscribed_skus())

    async def test_send_mail(self, sim: SimTenant, client: GraphClient) -> None:
        profile = await sim.get("/_sim/profile")
        message = MailMessage.model_validate(
            {
                "subject": "Your admin access is changing",
                "body": {"contentType": "HTML", "content": "<p>Activate in PIM</p>"},
                "toRecipients": [{"emailAddress": {"address": "someone@contoso.com"}}],
            }
        )
        await client.send_mail(profile["comms"]["sender"], message)
        outbox = await sim.get("/_sim/outbox")
        assert [m["subject"] for m in outbox] == ["Your admin access is changing"]
        assert outbox[0]["save_to_sent_items"] is False

    async def test_send_mail_from_nobody(self, client: GraphClient) -> None:
        message = MailMessage.model_validate({"subject": "s", "body": {"content": "c"}})
        with pytest.raises(GraphError) as caught:
            await client.send_mail(str(uuid.uuid4()), message)
        assert caught.value.status is not None
        assert 400 <= caught.value.status < 500


class TestAudit:
    async def test_role_setting_changes_are_audited(
        self, client: GraphClient, fake_time: FakeTime, sim: SimTenant
    ) -> None:
        start = sim.clock.now() - timedelta(minutes=1)
        policy_id = (await client.get_policy_assignment(GLOBAL_ADMIN)).policy_id
        rule = await client.get_policy_rule(policy_id, "Enablement_EndUser_Assignment")
        await client.update_policy_rule(policy_id, rule)
        audits = [
            a
            async for a in client.iter_directory_audits(
                since=start, activity_display_name="Update role setting in PIM"
            )
        ]
        assert audits
        assert all(a.activity_display_name == "Update role setting in PIM" for a in audits)

    async def test_audit_reads_are_paced(
        self, client: GraphClient, fake_time: FakeTime, sim: SimTenant
    ) -> None:
        for _ in range(7):
            [a async for a in client.iter_directory_audits(category="RoleManagement")]
        assert len(fake_time.sleeps) == 6
        assert all(s == pytest.approx(10 / 5 / 0.95) for s in fake_time.sleeps)
        stats = await sim.get("/_sim/requests")
        assert stats["throttled"] == 0


class TestAuthAndPermissions:
    async def test_missing_token_is_an_auth_error(
        self, sim: SimTenant, graph_settings: GraphSettings
    ) -> None:
        async with sim.client(graph_settings, auth=_NoBearer()) as graph:
            with pytest.raises(GraphAuthError) as caught:
                await graph.get_organization()
        assert caught.value.status == 401

    async def test_missing_permission_is_forbidden(
        self, sim: SimTenant, client: GraphClient, state: dict[str, Any]
    ) -> None:
        granted = (await sim.get("/_sim/permissions"))["granted"]
        remaining = [p for p in granted if p != "RoleEligibilitySchedule.ReadWrite.Directory"]
        async with sim.control() as control:
            await control.put("/_sim/permissions", json={"granted": remaining})
        with pytest.raises(GraphForbiddenError):
            await client.create_eligibility_request(assign(regular_users(state, 1)[0]))


class TestProbe:
    async def test_probe_tells_granted_from_denied_without_changing_anything(
        self, sim: SimTenant, client: GraphClient
    ) -> None:
        path = "/identityGovernance/accessReviews/definitions"
        with pytest.raises(GraphError) as granted:
            await client.probe_write("POST", path)
        assert not isinstance(granted.value, GraphForbiddenError)
        assert granted.value.status in (400, 404)
        async with sim.control() as control:
            await control.put("/_sim/permissions", json={"granted": ["Directory.Read.All"]})
        with pytest.raises(GraphForbiddenError):
            await client.probe_write("POST", path)
        assert (await sim.get("/_sim/state"))["review_definitions"] == []


class _NoBearer:
    """An ``httpx.Auth`` that sends nothing, as a misconfigured deployment would."""

    def __new__(cls) -> Any:
        import httpx

        return httpx.Auth()
