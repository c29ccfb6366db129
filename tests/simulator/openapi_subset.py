"""The slice of Microsoft's Graph v1.0 OpenAPI that the simulator implements, cached as JSON.

Parsing the full module files takes seconds (Identity.Governance.yml is 3.3 MB), so the response
schemas of the operations we serve, with every schema they reference, are extracted once into
``data/graph_openapi_subset.json``. The cache records the sha256 of each source file and is rebuilt
when a source changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.simulator.conftest import REFERENCE as _REFERENCE

REFERENCE = _REFERENCE / "graph-openapi"
CACHE = Path(__file__).parent / "data" / "graph_openapi_subset.json"

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


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _extract() -> dict[str, Any]:
    sources = sorted({file for file, _, _ in OPERATIONS})
    documents = {
        name: yaml.load((REFERENCE / name).read_text(), Loader=yaml.CSafeLoader) for name in sources
    }
    operations: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {"schemas": {}, "responses": {}}
    for file, method, path in OPERATIONS:
        document = documents[file]
        responses = document["paths"][path][method]["responses"]
        status = next(code for code in responses if str(code).startswith("2"))
        response = responses[status]
        pending = [response]
        while pending:
            node = pending.pop()
            for ref in _refs(node):
                section, name = ref.split("/")[2], ref.split("/")[3]
                if name in components[section]:
                    continue
                target = _resolve_pointer(document, ref)
                components[section][name] = target
                pending.append(target)
        operations[f"{method.upper()} {path}"] = response
    return {"operations": operations, "components": components}


def load_subset() -> dict[str, Any]:
    """The cached subset, rebuilt when a source file changed. Without the sources (a checkout
    without the shared reference) the committed cache is used as it is."""
    names = sorted({f for f, _, _ in OPERATIONS})
    if CACHE.exists() and not all((REFERENCE / name).exists() for name in names):
        return dict(json.loads(CACHE.read_text()))
    digests = {name: _sha(REFERENCE / name) for name in names}
    if CACHE.exists():
        cached = json.loads(CACHE.read_text())
        if cached.get("sources") == digests and set(cached["operations"]) == {
            f"{m.upper()} {p}" for _, m, p in OPERATIONS
        }:
            return dict(cached)
    subset = {"sources": digests, **_extract()}
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(subset, separators=(",", ":"), sort_keys=True))
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
        response = _resolve_pointer(subset, response["$ref"])
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
    return _resolve_pointer(subset, ref)


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
