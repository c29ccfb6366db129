"""``/identityGovernance/accessReviews/definitions``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.simulator.state import SimState
from tests.simulator.conftest import SAMPLES, USER_ADMIN, Sim, SimFactory, plain_user

DEFINITIONS = "/v1.0/identityGovernance/accessReviews/definitions"


def _body(sim: Sim) -> dict[str, Any]:
    body = json.loads(
        (SAMPLES / "accessReviewDefinitions_create_privilegedRole.request.json").read_text()
    )
    body["reviewers"][0]["query"] = f"/users/{plain_user(sim.state)}"
    body["displayName"] = "Quarterly review - User Administrator"
    body["settings"].update(
        defaultDecisionEnabled=True, defaultDecision="Deny", autoApplyDecisionsEnabled=True
    )
    body["settings"]["recurrence"]["range"]["startDate"] = "2025-03-01"
    return dict(body)


class TestDefinitions:
    async def test_create_echoes_the_full_definition(self, sim: Sim) -> None:
        response = await sim.post(DEFINITIONS, _body(sim))
        assert response.status_code == 201
        created = response.json()
        assert created["@odata.context"].endswith(
            "#identityGovernance/accessReviews/definitions/$entity"
        )
        assert created["status"] == "NotStarted"  # starts 2025-03-01, after the fake clock
        assert created["createdBy"]["displayName"] == "PIM Rollout"
        recurrence = created["settings"]["recurrence"]
        assert recurrence["pattern"]["type"] == "absoluteMonthly"
        assert recurrence["pattern"]["interval"] == 3
        assert recurrence["range"] == {
            "type": "noEnd",
            "numberOfOccurrences": 0,
            "recurrenceTimeZone": None,
            "startDate": "2025-03-01",
            "endDate": None,
        }
        assert created["settings"]["applyActions"] == [
            {"@odata.type": "#microsoft.graph.removeAccessApplyAction"}
        ]
        assert created["fallbackReviewers"] == []
        assert created["stageSettings"] == []

    async def test_started_review_is_in_progress(self, sim: Sim) -> None:
        body = _body(sim)
        body["settings"]["recurrence"]["range"]["startDate"] = "2024-12-01"
        assert (await sim.post(DEFINITIONS, body)).json()["status"] == "InProgress"

    @pytest.mark.parametrize("missing", ["displayName", "descriptionForAdmins", "scope"])
    async def test_required_properties(self, sim: Sim, missing: str) -> None:
        body = _body(sim)
        del body[missing]
        response = await sim.post(DEFINITIONS, body)
        assert response.status_code == 400
        assert missing in response.json()["error"]["message"]

    async def test_scope_must_name_an_existing_role(self, sim: Sim) -> None:
        body = _body(sim)
        body["scope"]["resourceScopes"][0]["query"] = (
            "/roleManagement/directory/roleDefinitions/00000000-0000-4000-8000-000000000000"
        )
        assert (await sim.post(DEFINITIONS, body)).status_code == 400

    async def test_reviewer_must_exist(self, sim: Sim) -> None:
        body = _body(sim)
        body["reviewers"][0]["query"] = "/users/00000000-0000-4000-8000-000000000000"
        assert (await sim.post(DEFINITIONS, body)).status_code == 400

    async def test_only_weekly_or_monthly_recurrence(self, sim: Sim) -> None:
        body = _body(sim)
        body["settings"]["recurrence"]["pattern"]["type"] = "daily"
        assert (await sim.post(DEFINITIONS, body)).status_code == 400

    async def test_get_list_filter_put_delete_and_instances(self, sim: Sim) -> None:
        created = (await sim.post(DEFINITIONS, _body(sim))).json()
        other = _body(sim)
        other["displayName"] = "Something else"
        await sim.post(DEFINITIONS, other)
        url = f"{DEFINITIONS}/{created['id']}"
        assert (await sim.get(url)).json()["displayName"] == created["displayName"]
        listed = await sim.get(f"{DEFINITIONS}?$filter=displayName eq '{created['displayName']}'")
        assert [d["id"] for d in listed.json()["value"]] == [created["id"]]
        instances = (await sim.get(f"{url}/instances")).json()["value"]
        assert len(instances) == 1
        assert instances[0]["startDateTime"].startswith("2025-03-01")
        replacement = copy.deepcopy(_body(sim))
        replacement["displayName"] = "Renamed"
        assert (await sim.put(url, replacement)).status_code == 204
        assert (await sim.get(url)).json()["displayName"] == "Renamed"
        deleted = await sim.delete(url)
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert (await sim.get(url)).status_code == 404
        assert (await sim.delete(url)).status_code == 404

    async def test_reviews_need_p2(self, make_sim: SimFactory, tenant: SimState) -> None:
        tenant.p2 = False
        sim = await make_sim(tenant)
        response = await sim.post(DEFINITIONS, _body(sim))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "AadPremiumLicenseRequired"

    async def test_create_and_delete_are_audited(self, sim: Sim) -> None:
        created = (await sim.post(DEFINITIONS, _body(sim))).json()
        await sim.delete(f"{DEFINITIONS}/{created['id']}")
        names = [a.body["activityDisplayName"] for a in sim.state.audits]
        assert names[-2:] == ["Create access review", "Delete access review"]
        assert USER_ADMIN in json.dumps(created["scope"])
