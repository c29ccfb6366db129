"""Users, groups, service principals, getByIds, organization, licences and mail."""

from __future__ import annotations

import base64
import json

import pytest

from app.simulator.state import SimState
from tests.simulator.conftest import APP_ADMIN, SAMPLES, Sim, SimFactory, holder


class TestUsers:
    async def test_by_id_and_by_user_principal_name(self, sim: Sim) -> None:
        user = next(u for u in sim.state.users.values() if u.user_type == "Member")
        by_id = (await sim.get(f"/v1.0/users/{user.id}")).json()
        by_upn = (await sim.get(f"/v1.0/users/{user.user_principal_name}")).json()
        assert by_id["id"] == by_upn["id"] == user.id
        assert by_id["@odata.context"].endswith("#users/$entity")

    async def test_select_filter_and_top(self, sim: Sim) -> None:
        user = next(iter(sim.state.users.values()))
        url = (
            f"/v1.0/users?$filter=userPrincipalName eq '{user.user_principal_name}'&$select=id,mail"
        )
        (found,) = (await sim.get(url)).json()["value"]
        assert found == {"id": user.id, "mail": user.mail}
        page = (await sim.get("/v1.0/users?$top=5")).json()
        assert len(page["value"]) == 5
        assert "@odata.nextLink" in page

    async def test_identities_only_when_selected(self, sim: Sim) -> None:
        member = next(u for u in sim.state.users.values() if u.user_type == "Member")
        guest = next(u for u in sim.state.users.values() if u.user_type == "Guest")
        guest.identities = [
            {"signInType": "federated", "issuer": "MicrosoftAccount", "issuerAssignedId": None}
        ]
        assert "identities" not in (await sim.get(f"/v1.0/users/{member.id}")).json()
        url = "/v1.0/users/{}?$select=id,identities"
        mine = (await sim.get(url.format(member.id))).json()["identities"]
        assert mine == [
            {
                "signInType": "userPrincipalName",
                "issuer": member.user_principal_name.split("@")[1],
                "issuerAssignedId": member.user_principal_name,
            }
        ]
        theirs = (await sim.get(url.format(guest.id))).json()["identities"]
        assert [i["issuer"] for i in theirs] == ["MicrosoftAccount"]

    async def test_on_premises_sync_only_when_selected(self, sim: Sim) -> None:
        synced = next(u for u in sim.state.users.values() if u.on_premises_sync_enabled)
        cloud = next(u for u in sim.state.users.values() if u.on_premises_sync_enabled is None)
        assert "onPremisesSyncEnabled" not in (await sim.get(f"/v1.0/users/{synced.id}")).json()
        url = "/v1.0/users/{}?$select=id,displayName,onPremisesSyncEnabled"
        assert (await sim.get(url.format(synced.id))).json()["onPremisesSyncEnabled"] is True
        body = (await sim.get(url.format(cloud.id))).json()
        assert body["onPremisesSyncEnabled"] is None
        assert set(body) == {"@odata.context", "id", "displayName", "onPremisesSyncEnabled"}

    async def test_unknown_user_is_404(self, sim: Sim) -> None:
        response = await sim.get("/v1.0/users/nobody@contoso.com")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "Request_ResourceNotFound"

    async def test_unsupported_filter(self, sim: Sim) -> None:
        response = await sim.get("/v1.0/users?$filter=city eq 'Paris'")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


class TestGroups:
    async def test_members_and_transitive_members(self, sim: Sim) -> None:
        outer = next(g for g in sim.state.groups.values() if len(g.member_ids) >= 2)
        inner_member = next(u for u in sim.state.users if u not in outer.member_ids)
        inner = next(g for g in sim.state.groups.values() if g.id != outer.id)
        inner.member_ids = [inner_member]
        outer.member_ids.append(inner.id)
        direct = (await sim.get(f"/v1.0/groups/{outer.id}/members")).json()["value"]
        assert {m["id"] for m in direct} == set(outer.member_ids)
        assert {m["@odata.type"] for m in direct} == {
            "#microsoft.graph.user",
            "#microsoft.graph.group",
        }
        flat = (await sim.get(f"/v1.0/groups/{outer.id}/transitiveMembers")).json()["value"]
        assert inner_member in {m["id"] for m in flat}
        assert inner.id in {m["id"] for m in flat}

    async def test_group_by_id_and_list_filter(self, sim: Sim) -> None:
        group = next(iter(sim.state.groups.values()))
        assert (await sim.get(f"/v1.0/groups/{group.id}")).json()[
            "displayName"
        ] == group.display_name
        assignable = (await sim.get("/v1.0/groups?$filter=isAssignableToRole eq true")).json()[
            "value"
        ]
        assert assignable
        assert all(g["isAssignableToRole"] for g in assignable)
        assert (
            await sim.get("/v1.0/groups/00000000-0000-4000-8000-000000000000")
        ).status_code == 404


class TestServicePrincipalsAndObjects:
    async def test_service_principal(self, sim: Sim) -> None:
        sp_id = holder(sim.state, APP_ADMIN, kind="servicePrincipal")
        body = (await sim.get(f"/v1.0/servicePrincipals/{sp_id}")).json()
        assert body["id"] == sp_id
        assert body["appId"]

    async def test_get_by_ids_with_types(self, sim: Sim) -> None:
        user = next(iter(sim.state.users))
        group = next(iter(sim.state.groups))
        sp = holder(sim.state, APP_ADMIN, kind="servicePrincipal")
        body = {"ids": [user, group, sp, "00000000-0000-4000-8000-000000000000"]}
        everything = (await sim.post("/v1.0/directoryObjects/getByIds", body)).json()["value"]
        assert {o["id"] for o in everything} == {user, group, sp}
        only_users = (
            await sim.post("/v1.0/directoryObjects/getByIds", {**body, "types": ["user"]})
        ).json()
        assert [o["@odata.type"] for o in only_users["value"]] == ["#microsoft.graph.user"]
        bad = await sim.post("/v1.0/directoryObjects/getByIds", {"ids": "x"})
        assert bad.status_code == 400

    async def test_organization(self, sim: Sim) -> None:
        (org,) = (await sim.get("/v1.0/organization")).json()["value"]
        assert org["id"] == sim.state.tenant_id
        assert org["displayName"] == sim.state.tenant_name


class TestSubscribedSkus:
    async def test_p2_service_plan_is_listed(self, sim: Sim) -> None:
        skus = (await sim.get("/v1.0/subscribedSkus")).json()["value"]
        plans = [
            p for s in skus for p in s["servicePlans"] if p["servicePlanName"] == "AAD_PREMIUM_P2"
        ]
        assert plans == [
            {
                "servicePlanId": "eec0eb4f-6444-4f95-aba0-50c24d67f998",
                "servicePlanName": "AAD_PREMIUM_P2",
                "provisioningStatus": "Success",
                "appliesTo": "User",
            }
        ]
        p2 = next(s for s in skus if s["skuPartNumber"] == "AAD_PREMIUM_P2")
        assert p2["capabilityStatus"] == "Enabled"
        assert p2["prepaidUnits"]["enabled"] >= len(sim.state.users)

    async def test_without_p2(self, make_sim: SimFactory) -> None:
        from app.simulator.seed import generate_tenant

        sim = await make_sim(generate_tenant(p2=False))
        skus = (await sim.get("/v1.0/subscribedSkus")).json()["value"]
        names = {p["servicePlanName"] for s in skus for p in s["servicePlans"]}
        assert "AAD_PREMIUM_P2" not in names
        assert "AAD_PREMIUM" in names

    async def test_only_select_is_supported(self, sim: Sim) -> None:
        assert (
            await sim.get("/v1.0/subscribedSkus?$filter=skuPartNumber eq 'x'")
        ).status_code == 400
        selected = (await sim.get("/v1.0/subscribedSkus?$select=skuPartNumber")).json()["value"]
        assert all(set(s) == {"skuPartNumber"} for s in selected)

    async def test_get_one(self, sim: Sim) -> None:
        first = (await sim.get("/v1.0/subscribedSkus")).json()["value"][0]
        assert (await sim.get(f"/v1.0/subscribedSkus/{first['id']}")).json()["skuId"] == first[
            "skuId"
        ]


class TestSendMail:
    def _sender(self, state: SimState) -> str:
        return str(state.profile.comms["sender"])

    async def test_doc_sample_is_accepted_and_recorded(self, sim: Sim) -> None:
        body = json.loads((SAMPLES / "users_sendMail.request.json").read_text())
        sender = self._sender(sim.state)
        response = await sim.post(f"/v1.0/users/{sender}/sendMail", body)
        assert response.status_code == 202
        assert response.content == b""
        outbox = (await sim.client.get("/_sim/outbox")).json()
        assert outbox[-1]["to"] == ["frannis@contoso.com"]
        assert outbox[-1]["cc"] == ["danas@contoso.com"]
        assert outbox[-1]["subject"] == "Meet for lunch?"
        assert outbox[-1]["save_to_sent_items"] is False
        assert outbox[-1]["sender_id"] == sender

    async def test_qualified_action_name_and_upn(self, sim: Sim) -> None:
        sender = sim.state.users[self._sender(sim.state)]
        body = {
            "message": {
                "subject": "PIM is coming",
                "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
                "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}],
            },
            "saveToSentItems": True,
        }
        response = await sim.post(
            f"/v1.0/users/{sender.user_principal_name}/microsoft.graph.sendMail", body
        )
        assert response.status_code == 202

    async def test_unknown_sender_and_sender_without_mailbox(self, sim: Sim) -> None:
        body = json.loads((SAMPLES / "users_sendMail.request.json").read_text())
        unknown = await sim.post("/v1.0/users/ghost@contoso.com/sendMail", body)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "ErrorInvalidUser"
        guest = next(u for u in sim.state.users.values() if u.user_type == "Guest")
        no_mailbox = await sim.post(f"/v1.0/users/{guest.id}/sendMail", body)
        assert no_mailbox.status_code == 404
        assert no_mailbox.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"message": {"subject": "x"}},
            {"message": {"toRecipients": [{"emailAddress": {"address": "not-an-address"}}]}},
            {
                "message": {"toRecipients": [{"emailAddress": {"address": "a@b.c"}}]},
                "saveToSentItems": "maybe",
            },
            {
                "message": {
                    "toRecipients": [{"emailAddress": {"address": "a@b.c"}}],
                    "body": {"contentType": "Markdown"},
                }
            },
        ],
    )
    async def test_invalid_messages_are_400(self, sim: Sim, body: dict[str, object]) -> None:
        response = await sim.post(f"/v1.0/users/{self._sender(sim.state)}/sendMail", body)
        assert response.status_code == 400

    async def test_mime_variant(self, sim: Sim) -> None:
        mime = b"To: a@contoso.com\r\nSubject: MIME hello\r\n\r\nBody text"
        url = f"/v1.0/users/{self._sender(sim.state)}/sendMail"
        ok = await sim.client.post(
            url,
            content=base64.b64encode(mime),
            headers={"Authorization": "Bearer x", "Content-Type": "text/plain"},
        )
        assert ok.status_code == 202
        assert (await sim.client.get("/_sim/outbox")).json()[-1]["subject"] == "MIME hello"
        bad = await sim.client.post(
            url,
            content=b"not base64 !!",
            headers={"Authorization": "Bearer x", "Content-Type": "text/plain"},
        )
        assert bad.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"
