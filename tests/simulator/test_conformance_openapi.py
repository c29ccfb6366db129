"""Conformance (2): the simulator's 2xx bodies validate against Microsoft's OpenAPI schemas.

One scripted session exercises every GET/POST/PATCH the simulator implements that has a JSON
2xx schema in ``graph-openapi/``; each response is validated with ``OAS30Validator``, $refs
resolved from the cached subset (see ``openapi_subset.py``).

Two things are adjusted, both on evidence rather than convenience:

* OData instance annotations (``@odata.context``, ``@odata.type`` …) are control information,
  not properties; the generated schemas don't model them (their ``additionalProperties`` demand
  objects), so they are removed before validation, except the ``@odata.nextLink`` the collection
  schemas do declare. ``@odata.type`` values are checked separately.
* ``null`` in a property whose schema is a non-nullable ``$ref`` is accepted only for the
  properties listed in ``NULL_WITH_SAMPLE_EVIDENCE``: Microsoft's own response samples show
  ``null`` there (the OpenAPI generator drops ``nullable`` next to ``$ref``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from app.simulator.app import create_simulator_app
from app.simulator.clock import FakeClock
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from tests.simulator.conftest import (
    AUTH,
    GA,
    HELPDESK_ADMIN,
    RM,
    SAMPLES,
    USER_ADMIN,
    assign_body,
    holder,
)
from tests.simulator.openapi_subset import OPERATIONS, load_subset, operation_for, response_schema

# property name -> the Microsoft sample that shows it null
NULL_WITH_SAMPLE_EVIDENCE = {
    "scheduleInfo": "roleEligibilityScheduleRequests_adminRemove.response.json",
    "application": "roleEligibilityScheduleRequests_adminAssign.response.json (createdBy)",
    "device": "roleEligibilityScheduleRequests_adminAssign.response.json (createdBy)",
    "user": "directoryAudits_list.response.json is app-null; createdBy.user null for app callers",
    "app": "directoryAudits_list.response.json (initiatedBy.app null)",
    "recurrence": "roleAssignmentSchedules_list.response.json (scheduleInfo.recurrence)",
    "groupType": "directoryAudits_list_filterInitiatedBy.response.json (targetResources)",
}
# Properties Microsoft's samples return that the v1.0 schema does not declare.
UNDECLARED_WITH_SAMPLE_EVIDENCE = {
    "resourceScope": "roleAssignments_list_filterPrincipalId.response.json",
    "userType": "directoryAudits_list_filterInitiatedBy.response.json (initiatedBy.user)",
    "homeTenantId": "directoryAudits_list_filterInitiatedBy.response.json (initiatedBy.user)",
    "homeTenantName": "directoryAudits_list_filterInitiatedBy.response.json (initiatedBy.user)",
}
# Microsoft samples that contradict the schema; the simulator follows the schema there.
SAMPLE_SCHEMA_CONFLICTS = {
    "roleManagementPolicyRule_update_expirationEndUser.response.json": (
        "echoes target.operations 'All' as sent; the schema's enum (and reference §2.5) is 'all'"
    ),
}


def _strip_annotations(node: Any, *, top: bool = True) -> Any:
    if isinstance(node, dict):
        return {
            key: _strip_annotations(value, top=False)
            for key, value in node.items()
            if not key.startswith("@") or (top and key == "@odata.nextLink")
        }
    if isinstance(node, list):
        return [_strip_annotations(item, top=False) for item in node]
    return node


def _odata_types(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@odata.type":
                found.append(value)
            else:
                found += _odata_types(value)
    elif isinstance(node, list):
        for item in node:
            found += _odata_types(item)
    return found


def _request_samples(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES.glob(pattern))]


async def _session() -> list[tuple[str, str, dict[str, Any]]]:
    """Drive the simulator through every operation; return (operation, url, body) triples."""
    clock = FakeClock()
    state = generate_tenant(users=80, admins=20, seed=11)
    app = create_simulator_app(state, limits=SimLimits(throttling=False), clock=clock)
    seen: list[tuple[str, str, dict[str, Any]]] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim", headers=AUTH
    ) as client:

        async def call(method: str, url: str, body: Any = None, **headers: str) -> dict[str, Any]:
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status_code < 300, (url, response.text)
            payload = response.json() if response.content else {}
            path = urlsplit(url).path.removeprefix("/v1.0")
            operation = operation_for(method, path)
            if operation is not None and payload:
                seen.append((operation, url, payload))
            return payload

        user = holder(state, USER_ADMIN)
        helpdesk = holder(state, HELPDESK_ADMIN)
        eligible = await call(
            "POST", f"{RM}/roleEligibilityScheduleRequests", assign_body(user, USER_ADMIN)
        )
        clock.advance(600)
        await call(
            "POST",
            f"{RM}/roleAssignmentScheduleRequests",
            {
                "action": "adminRemove",
                "principalId": user,
                "roleDefinitionId": USER_ADMIN,
                "directoryScopeId": "/",
            },
        )
        activation = await call(
            "POST",
            f"{RM}/roleAssignmentScheduleRequests",
            {
                "action": "selfActivate",
                "principalId": user,
                "roleDefinitionId": USER_ADMIN,
                "directoryScopeId": "/",
                "justification": "Investigating a sign-in incident",
                "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT2H"}},
                "ticketInfo": {"ticketNumber": "INC1234", "ticketSystem": "ServiceNow"},
            },
            **{"x-sim-mfa": "satisfied"},
        )
        await call("POST", f"{RM}/roleAssignmentScheduleRequests", assign_body(helpdesk, GA))
        for collection in (
            "roleDefinitions",
            "roleAssignments?$expand=principal",
            "roleAssignmentSchedules",
            "roleAssignmentScheduleInstances?$expand=principal,roleDefinition",
            "roleEligibilitySchedules?$expand=principal",
            "roleEligibilityScheduleInstances",
            "roleAssignmentScheduleRequests",
            "roleEligibilityScheduleRequests",
        ):
            page = await call("GET", f"{RM}/{collection}")
            first = page["value"][0]
            name = collection.split("?")[0]
            if name == "roleAssignments":
                continue
            await call("GET", f"{RM}/{name}/{first['id']}")
        assignments = await call("GET", f"{RM}/roleAssignments?$top=1")
        await call("GET", f"{RM}/roleAssignments/{assignments['value'][0]['id']}")
        await call("GET", f"{RM}/roleAssignmentScheduleRequests/{activation['id']}")
        await call("GET", f"{RM}/roleEligibilityScheduleRequests/{eligible['id']}")
        scope = "$filter=scopeId eq '/' and scopeType eq 'DirectoryRole'"
        policies = await call("GET", f"/v1.0/policies/roleManagementPolicies?{scope}")
        await call("GET", f"/v1.0/policies/roleManagementPolicies?{scope}&$expand=rules")
        policy_id = policies["value"][0]["id"]
        await call("GET", f"/v1.0/policies/roleManagementPolicies/{policy_id}?$expand=rules")
        await call("GET", f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules")
        for rule in _request_samples("roleManagementPolicyRule_update_*.request.json"):
            await call(
                "GET", f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules/{rule['id']}"
            )
            if "Approval" in rule["id"]:
                members = list(state.users)[:2]
                stage = rule["setting"]["approvalStages"][0]
                stage["primaryApprovers"] = [
                    {"@odata.type": "#microsoft.graph.singleUser", "userId": members[0]}
                ]
            await call(
                "PATCH",
                f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules/{rule['id']}",
                rule,
            )
        assignments_page = await call(
            "GET",
            f"/v1.0/policies/roleManagementPolicyAssignments?{scope} and roleDefinitionId eq "
            f"'{GA}'&$expand=policy($expand=rules)",
        )
        await call(
            "GET",
            f"/v1.0/policies/roleManagementPolicyAssignments/{assignments_page['value'][0]['id']}",
        )
        reviews = []
        for body in _request_samples("accessReviewDefinitions_create_*.request.json"):
            for reviewer in body.get("reviewers", []) + body.get("fallbackReviewers", []):
                if reviewer["query"].startswith("/users/"):
                    reviewer["query"] = f"/users/{next(iter(state.users))}"
            reviews.append(
                await call("POST", "/v1.0/identityGovernance/accessReviews/definitions", body)
            )
        await call("GET", "/v1.0/identityGovernance/accessReviews/definitions")
        for review in reviews:
            await call("GET", f"/v1.0/identityGovernance/accessReviews/definitions/{review['id']}")
            await call(
                "GET",
                f"/v1.0/identityGovernance/accessReviews/definitions/{review['id']}/instances",
            )
        skus = await call("GET", "/v1.0/subscribedSkus")
        await call("GET", f"/v1.0/subscribedSkus/{skus['value'][0]['id']}")
        await call("GET", "/v1.0/organization")
        audits = await call("GET", "/v1.0/auditLogs/directoryAudits")
        clock.advance(11)
        await call("GET", f"/v1.0/auditLogs/directoryAudits/{audits['value'][0]['id']}")
    return seen


@pytest.fixture(scope="module")
def session() -> list[tuple[str, str, dict[str, Any]]]:
    return asyncio.run(_session())


@pytest.fixture(scope="module")
def subset() -> dict[str, Any]:
    return load_subset()


def _allowed(error: Any) -> bool:
    if error.instance is not None:
        return False
    name = next((p for p in reversed(error.absolute_path) if isinstance(p, str)), None)
    return name in NULL_WITH_SAMPLE_EVIDENCE


@pytest.mark.parametrize("operation", [f"{m.upper()} {p}" for _, m, p in OPERATIONS])
def test_response_validates_against_openapi(
    operation: str, session: list[tuple[str, str, dict[str, Any]]], subset: dict[str, Any]
) -> None:
    bodies = [(url, body) for op, url, body in session if op == operation]
    assert bodies, f"the session never called {operation}"
    validator = OAS30Validator(response_schema(subset, operation))
    for url, body in bodies:
        errors = [e for e in validator.iter_errors(_strip_annotations(body)) if not _allowed(e)]
        details = [f"{list(e.absolute_path)}: {e.message}" for e in errors[:10]]
        assert not errors, f"{url}:\n" + "\n".join(details)
        for odata_type in _odata_types(body):
            assert odata_type.startswith("#microsoft.graph."), odata_type


def _undeclared(subset: dict[str, Any], operation: str, body: dict[str, Any]) -> list[str]:
    from tests.simulator.openapi_subset import undeclared_properties

    found = undeclared_properties(subset, response_schema(subset, operation), body)
    return [p for p in found if p.rsplit(".", 1)[-1] not in UNDECLARED_WITH_SAMPLE_EVIDENCE]


@pytest.mark.parametrize("operation", [f"{m.upper()} {p}" for _, m, p in OPERATIONS])
def test_response_declares_only_schema_properties(
    operation: str, session: list[tuple[str, str, dict[str, Any]]], subset: dict[str, Any]
) -> None:
    for url, body in [(url, body) for op, url, body in session if op == operation]:
        assert not _undeclared(subset, operation, body), url


def _sample_responses() -> list[tuple[str, str, str]]:
    index = json.loads((SAMPLES / "index.json").read_text())
    found = []
    for entry in index["entries"]:
        url = entry.get("request_url") or ""
        if not url.startswith("https://graph.microsoft.com/v1.0/"):
            continue
        path = urlsplit(url.replace(" ", "%20")).path.removeprefix("/v1.0")
        operation = operation_for(entry["method"], path.rstrip("/"))
        for name in entry["files"]:
            info = entry["file_info"][name]
            if name.endswith(".response.json") and operation and info.get("valid_json", True):
                found.append((entry["operation"], operation, name))
    return found


@pytest.mark.parametrize(("sample", "operation", "file"), _sample_responses())
def test_microsoft_samples_validate_the_same_way(
    sample: str, operation: str, file: str, subset: dict[str, Any]
) -> None:
    """The yardstick holds Microsoft's own bodies to the same standard as ours."""
    body = json.loads((SAMPLES / file).read_text())
    validator = OAS30Validator(response_schema(subset, operation))
    errors = [e for e in validator.iter_errors(_strip_annotations(body)) if not _allowed(e)]
    if file in SAMPLE_SCHEMA_CONFLICTS:
        assert errors, f"{file} no longer conflicts with the schema: drop it from the list"
        assert all(list(e.absolute_path)[:2] == ["target", "operations"] for e in errors)
        return
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_validator_rejects_a_wrong_body(subset: dict[str, Any]) -> None:
    validator = OAS30Validator(
        response_schema(subset, "POST /roleManagement/directory/roleEligibilityScheduleRequests")
    )
    wrong = {
        "id": "x",
        "status": 5,
        "createdDateTime": "yesterday",
        "scheduleInfo": {"expiration": {"type": "sometimes"}},
    }
    messages = [e.message for e in validator.iter_errors(wrong)]
    assert any("5 is not of type 'string'" in m for m in messages)
    assert any("yesterday" in m for m in messages)
    assert any("sometimes" in m for m in messages)
