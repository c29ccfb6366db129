"""Sent Items lookup by a custom extended property: how a lost sendMail answer is verified."""

from __future__ import annotations

from typing import Any

from tests.simulator.conftest import Sim

PROPERTY = "String {8f2b1c3e-6a44-4c39-9d71-4f0a9b2e7d15} Name PimRolloutMailKey"


def _mail(key: str, *, save: bool = True) -> dict[str, Any]:
    return {
        "message": {
            "subject": "Your roles are becoming just-in-time",
            "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
            "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}],
            "singleValueExtendedProperties": [{"id": PROPERTY, "value": key}],
        },
        "saveToSentItems": save,
    }


def _filter(key: str) -> str:
    return f"singleValueExtendedProperties/any(ep: ep/id eq '{PROPERTY}' and ep/value eq '{key}')"


class TestSentItems:
    async def test_finds_a_sent_message_by_its_property(self, sim: Sim) -> None:
        sender = str(sim.state.profile.comms["sender"])
        assert (await sim.post(f"/v1.0/users/{sender}/sendMail", _mail("k-1"))).status_code == 202
        url = f"/v1.0/users/{sender}/mailFolders/sentitems/messages"
        found = await sim.get(url, params={"$filter": _filter("k-1"), "$select": "id"})
        assert found.status_code == 200
        assert len(found.json()["value"]) == 1
        missing = await sim.get(url, params={"$filter": _filter("k-2")})
        assert missing.json()["value"] == []
        outbox = (await sim.client.get("/_sim/outbox")).json()
        assert outbox[-1]["extended_properties"] == {PROPERTY: "k-1"}

    async def test_not_saved_means_not_found(self, sim: Sim) -> None:
        sender = str(sim.state.profile.comms["sender"])
        await sim.post(f"/v1.0/users/{sender}/sendMail", _mail("k-3", save=False))
        url = f"/v1.0/users/{sender}/mailFolders/SentItems/messages"
        assert (await sim.get(url, params={"$filter": _filter("k-3")})).json()["value"] == []

    async def test_other_folders_and_filters_are_refused(self, sim: Sim) -> None:
        sender = str(sim.state.profile.comms["sender"])
        inbox = await sim.get(f"/v1.0/users/{sender}/mailFolders/inbox/messages")
        assert inbox.status_code == 404
        bad = await sim.get(
            f"/v1.0/users/{sender}/mailFolders/sentitems/messages",
            params={"$filter": "subject eq 'x'"},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "ErrorInvalidUrlQueryFilter"

    async def test_bad_extended_property_is_refused(self, sim: Sim) -> None:
        sender = str(sim.state.profile.comms["sender"])
        body = _mail("k-4")
        body["message"]["singleValueExtendedProperties"] = [{"id": PROPERTY}]
        response = await sim.post(f"/v1.0/users/{sender}/sendMail", body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "ErrorInvalidExtendedProperty"
