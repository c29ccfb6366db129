"""The slice of Microsoft's Graph v1.0 OpenAPI that the simulator implements.

The full module files are megabytes (Identity.Governance.yml is 3.3 MB) and live outside the
repository, so the response schemas of the operations we serve, with every schema they
reference, are kept in ``tests/fixtures/graph-openapi/v1.0-subset.json``. That file is made by
``python -m tests.fixtures.trim_openapi DIR`` from the module files in ``DIR``; it records the
sha256 of each source file (see ``tests/fixtures/SOURCE.md``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fixtures import GRAPH_OPENAPI_SUBSET

# (file, method, path) of every operation the simulator implements that has a JSON 2xx body.
OPERATIONS: tuple[tuple[str, str, str], ...] = tuple(
    [
        ("Identity.Governance.yml", "get", f"/roleManagement/directory/{p}")
        for p in (
            "roleDefinitions",
            "roleDefinitions/{unifiedRoleDefinition-id}",
            "roleAssignments",
            "roleAssignments/{unifiedRoleAssignment-id}",
            "roleAssignmentSchedules",
            "roleAssignmentSchedules/{unifiedRoleAssignmentSchedule-id}",
            "roleAssignmentScheduleInstances",
            "roleAssignmentScheduleInstances/{unifiedRoleAssignmentScheduleInstance-id}",
            "roleEligibilitySchedules",
            "roleEligibilitySchedules/{unifiedRoleEligibilitySchedule-id}",
            "roleEligibilityScheduleInstances",
            "roleEligibilityScheduleInstances/{unifiedRoleEligibilityScheduleInstance-id}",
            "roleAssignmentScheduleRequests",
            "roleAssignmentScheduleRequests/{unifiedRoleAssignmentScheduleRequest-id}",
            "roleEligibilityScheduleRequests",
            "roleEligibilityScheduleRequests/{unifiedRoleEligibilityScheduleRequest-id}",
        )
    ]
    + [
        (
            "Identity.Governance.yml",
            "post",
            "/roleManagement/directory/roleAssignmentScheduleRequests",
        ),
        (
            "Identity.Governance.yml",
            "post",
            "/roleManagement/directory/roleEligibilityScheduleRequests",
        ),
        ("Identity.Governance.yml", "get", "/identityGovernance/accessReviews/definitions"),
        ("Identity.Governance.yml", "post", "/identityGovernance/accessReviews/definitions"),
        (
            "Identity.Governance.yml",
            "get",
            "/identityGovernance/accessReviews/definitions/{accessReviewScheduleDefinition-id}",
        ),
        (
            "Identity.Governance.yml",
            "get",
            "/identityGovernance/accessReviews/definitions/{accessReviewScheduleDefinition-id}/instances",
        ),
        ("Identity.SignIns.yml", "get", "/policies/roleManagementPolicies"),
        (
            "Identity.SignIns.yml",
            "get",
            "/policies/roleManagementPolicies/{unifiedRoleManagementPolicy-id}",
        ),
        (
            "Identity.SignIns.yml",
            "get",
            "/policies/roleManagementPolicies/{unifiedRoleManagementPolicy-id}/rules",
        ),
        (
            "Identity.SignIns.yml",
            "get",
            "/policies/roleManagementPolicies/{unifiedRoleManagementPolicy-id}/rules/"
            "{unifiedRoleManagementPolicyRule-id}",
        ),
        (
            "Identity.SignIns.yml",
            "patch",
            "/policies/roleManagementPolicies/{unifiedRoleManagementPolicy-id}/rules/"
            "{unifiedRoleManagementPolicyRule-id}",
        ),
        ("Identity.SignIns.yml", "get", "/policies/roleManagementPolicyAssignments"),
        (
            "Identity.SignIns.yml",
            "get",
            "/policies/roleManagementPolicyAssignments/{unifiedRoleManagementPolicyAssignment-id}",
        ),
        ("Identity.DirectoryManagement.yml", "get", "/subscribedSkus"),
        ("Identity.DirectoryManagement.yml", "get", "/subscribedSkus/{subscribedSku-id}"),
        ("Identity.DirectoryManagement.yml", "get", "/organization"),
        ("Reports.yml", "get", "/auditLogs/directoryAudits"),
        ("Reports.yml", "get", "/auditLogs/directoryAudits/{directoryAudit-id}"),
    ]
)


def resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def load_subset() -> dict[str, Any]:
    """The committed subset; it must hold exactly the operations listed above."""
    subset: dict[str, Any] = json.loads(GRAPH_OPENAPI_SUBSET.read_text())
    wanted = {f"{method.upper()} {path}" for _, method, path in OPERATIONS}
    missing = wanted - set(subset["operations"])
    assert not missing, (
        f"{GRAPH_OPENAPI_SUBSET.name} lacks {sorted(missing)}: "
        "rebuild it with python -m tests.fixtures.trim_openapi"
    )
    return subset


def _without_open_type_markers(node: Any) -> Any:
    """Remove the generator's ``additionalProperties: {type: object}`` markers.

    Every generated schema carries ``additionalProperties: {type: object}`` (its way of saying
    "open type"), including each branch of an ``allOf`` inheritance chain and every base type.
    In JSON Schema a branch then rejects the properties its siblings declare, and a base type
    used polymorphically (``principal``: directoryObject holding a user) rejects the derived
    type's properties, so no real Graph body validates - Microsoft's own samples included
    (see ``test_microsoft_samples_validate_the_same_way``). The markers are dropped; types,
    patterns, enums and nullability stay as written, and undeclared properties are caught by
    ``undeclared_properties`` instead.
    """
    if isinstance(node, dict):
        return {
            key: _without_open_type_markers(value)
            for key, value in node.items()
            if key != "additionalProperties"
        }
    if isinstance(node, list):
        return [_without_open_type_markers(item) for item in node]
    return node


def response_schema(subset: dict[str, Any], operation: str) -> dict[str, Any]:
    """A standalone JSON schema for an operation's 2xx JSON body, components embedded."""
    response = subset["operations"][operation]
    if "$ref" in response:
        response = resolve_pointer(subset, response["$ref"])
    body = response["content"]["application/json"]["schema"]
    schema: dict[str, Any] = _without_open_type_markers(
        {**body, "components": subset["components"]}
    )
    return schema


def operation_for(method: str, url_path: str) -> str | None:
    """Map a concrete request path (``/roleManagement/…/{id}``) to its OpenAPI operation key."""
    for _, op_method, template in OPERATIONS:
        if op_method.upper() != method.upper():
            continue
        pattern = (
            "^"
            + re.sub(
                r"\{[^}]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
            )
            + "$"
        )
        if re.match(pattern, url_path):
            return f"{op_method.upper()} {template}"
    return None


def _component(subset: dict[str, Any], ref: str) -> Any:
    return resolve_pointer(subset, ref)


def declared(subset: dict[str, Any], schema: Any) -> tuple[dict[str, Any], bool]:
    """Properties a schema declares (through $ref, allOf, anyOf, oneOf), and whether it is
    an object schema with a closed property list."""
    if not isinstance(schema, dict):
        return {}, False
    if "$ref" in schema:
        return declared(subset, _component(subset, schema["$ref"]))
    properties: dict[str, Any] = dict(schema.get("properties") or {})
    closed = bool(properties)
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            more, branch_closed = declared(subset, branch)
            properties.update(more)
            closed = closed or branch_closed
    return properties, closed


def undeclared_properties(
    subset: dict[str, Any], schema: Any, instance: Any, path: str = "$"
) -> list[str]:
    """Paths of properties the instance has but neither its declared type nor, for a
    polymorphic value, the type named by its ``@odata.type`` declares."""
    if isinstance(instance, list):
        items = schema.get("items") if isinstance(schema, dict) else None
        if items is None and isinstance(schema, dict) and "$ref" in schema:
            items = _component(subset, schema["$ref"]).get("items")
        found: list[str] = []
        for index, item in enumerate(instance):
            found += undeclared_properties(subset, items or {}, item, f"{path}[{index}]")
        return found
    if not isinstance(instance, dict):
        return []
    properties, closed = declared(subset, schema)
    odata_type = instance.get("@odata.type")
    if isinstance(odata_type, str):
        name = odata_type.lstrip("#")
        concrete = subset["components"]["schemas"].get(name)
        if concrete is None:
            return []  # the concrete type is outside the extracted subset; nothing to check
        properties, closed = declared(subset, concrete)
    if not closed:
        return []
    found = []
    for key, value in instance.items():
        if key.startswith("@"):
            continue
        if key not in properties:
            found.append(f"{path}.{key}")
            continue
        found += undeclared_properties(subset, properties[key], value, f"{path}.{key}")
    return found
