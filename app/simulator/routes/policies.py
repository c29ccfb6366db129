"""``/policies/roleManagementPolicies`` and ``/policies/roleManagementPolicyAssignments`` (§7)."""

from __future__ import annotations

import json
from typing import Any

from app.simulator import audit, errors, odata, permissions, serialize
from app.simulator.audit import Initiator
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.odata import Expand, Node
from app.simulator.policies import patch_rule
from app.simulator.routes import common
from app.simulator.state import Policy

POLICIES = "policies/roleManagementPolicies"
ASSIGNMENTS = "policies/roleManagementPolicyAssignments"
SCOPE_TYPES = ("DirectoryRole", "Directory")
POLICY_PROPERTIES = (
    "id",
    "displayName",
    "description",
    "isOrganizationDefault",
    "scopeId",
    "scopeType",
    "lastModifiedDateTime",
    "lastModifiedBy",
    "rules",
    "effectiveRules",
)
ASSIGNMENT_PROPERTIES = ("id", "policyId", "scopeId", "scopeType", "roleDefinitionId", "policy")
RULE_PROPERTIES = (
    "id",
    "target",
    "isExpirationRequired",
    "maximumDuration",
    "enabledRules",
    "setting",
    "isEnabled",
    "claimValue",
    "notificationType",
    "recipientType",
    "notificationLevel",
    "isDefaultRecipientsEnabled",
    "notificationRecipients",
)
# scopeId and scopeType (eq) are required, roleDefinitionId optional (reference §7.1).
SCOPE_FILTER = odata.spec({"scopeId": ("eq",), "scopeType": ("eq",)}, allow_or=False)
ASSIGNMENT_FILTER = odata.spec(
    {"scopeId": ("eq",), "scopeType": ("eq",), "roleDefinitionId": ("eq", "in")}, allow_or=False
)
RULE_FILTER = odata.spec({"id": ("eq", "ne", "in")})


def _scope(node: Node | None) -> str | None:
    """The scopeType the filter asks for, or None when it matches no directory-role policy."""
    scope_ids = odata.equality_values(node, "scopeId")
    scope_types = odata.equality_values(node, "scopeType")
    if scope_ids is None or scope_types is None:
        raise errors.bad_request(
            "The $filter must specify both scopeId and scopeType, e.g. "
            "scopeId eq '/' and scopeType eq 'DirectoryRole'."
        )
    if scope_ids != {"/"}:
        return None
    return next((t for t in SCOPE_TYPES if {t.lower()} == scope_types), None)


def find_policy(ctx: SimContext, policy_id: str) -> tuple[Policy, str]:
    prefix, _, suffix = policy_id.partition("_")
    scope_type = next((t for t in SCOPE_TYPES if t.lower() == prefix.lower()), None)
    if scope_type is not None:
        for policy in ctx.state.policies.values():
            if policy.id.split("_", 1)[1].lower() == suffix.lower():
                return policy, scope_type
    raise errors.not_found(f"The role management policy '{policy_id}' does not exist.")


def _rules(policy: Policy) -> list[dict[str, Any]]:
    return [dict(rule) for rule in policy.rules.values()]


def _render_policy(policy: Policy, scope_type: str, expand: list[Expand]) -> dict[str, Any]:
    body = serialize.policy(policy, scope_type)
    for option in expand:
        if option.name.lower() in {"rules", "effectiverules"}:
            body[option.name] = _rules(policy)
    return body


def list_policies(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    if "$filter" not in request.params:
        raise errors.bad_request(
            "A $filter on scopeId and scopeType is required, e.g. "
            "scopeId eq '/' and scopeType eq 'DirectoryRole'."
        )
    query = common.list_query(
        request,
        filter_spec=SCOPE_FILTER,
        expandable=("rules", "effectiveRules"),
        selectable=POLICY_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicy",
    )
    scope_type = _scope(query.node)
    policies = list(ctx.state.policies.values()) if scope_type else []
    return common.collection(
        ctx,
        request,
        policies,
        key=lambda p: p.seq,
        render=lambda p: _render_policy(p, scope_type or "DirectoryRole", query.expand),
        query=query,
        fragment=common.expand_fragment(POLICIES, query.expand),
        selectable=POLICY_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicy",
    )


def get_policy(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    policy, scope_type = find_policy(ctx, params["id"])
    expand = odata.parse_expand(request.params.get("$expand"))
    return common.entity(request, f"{POLICIES}/$entity", _render_policy(policy, scope_type, expand))


def list_rules(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    policy, scope_type = find_policy(ctx, params["id"])
    query = common.list_query(
        request,
        filter_spec=RULE_FILTER,
        selectable=RULE_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicyRule",
    )
    rules = common.filtered(_rules(policy), query.node)
    order = {rule_id: index for index, rule_id in enumerate(policy.rules)}
    policy_id = serialize.policy_id_for_scope(policy, scope_type)
    return common.collection(
        ctx,
        request,
        rules,
        key=lambda r: order[r["id"]],
        render=lambda r: r,
        query=query,
        fragment=f"{POLICIES}('{policy_id}')/rules",
        selectable=RULE_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicyRule",
    )


def _rule(policy: Policy, rule_id: str) -> dict[str, Any]:
    for key, rule in policy.rules.items():
        if key.lower() == rule_id.lower():
            return rule
    raise errors.not_found(f"The rule '{rule_id}' does not exist on policy '{policy.id}'.")


def get_rule(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    policy, scope_type = find_policy(ctx, params["id"])
    rule = dict(_rule(policy, params["ruleId"]))
    policy_id = serialize.policy_id_for_scope(policy, scope_type)
    return common.entity(request, f"{POLICIES}('{policy_id}')/rules/$entity", rule)


def update_rule(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    policy, scope_type = find_policy(ctx, params["id"])
    current = _rule(policy, params["ruleId"])
    updated = patch_rule(ctx.state, policy, params["ruleId"], common.json_body(request))
    now = ctx.clock.now()
    policy.rules[current["id"]] = updated
    policy.last_modified_at = now
    policy.last_modified_by = {
        "displayName": ctx.state.caller_app_name,
        "id": ctx.state.caller_app_id,
    }
    role_target = audit.role_target(ctx.state, policy.role_definition_id)
    role_target["modifiedProperties"] = [
        {
            "displayName": current["id"],
            "oldValue": json.dumps(current, separators=(",", ":")),
            "newValue": json.dumps(updated, separators=(",", ":")),
        }
    ]
    audit.record(
        ctx.state,
        at=now,
        activity="Update role setting in PIM",
        operation_type="Update",
        initiator=Initiator("app"),
        targets=[
            role_target,
            {
                "id": policy.id,
                "displayName": "DirectoryRole",
                "type": "Policy",
                "userPrincipalName": None,
                "groupType": None,
                "modifiedProperties": [],
            },
        ],
        details={"RuleId": current["id"], "RoleDefinitionOriginId": policy.role_definition_id},
    )
    if ctx.limits.policy_patch_status == 204:
        return GraphResponse(204)
    policy_id = serialize.policy_id_for_scope(policy, scope_type)
    return common.entity(request, f"{POLICIES}('{policy_id}')/rules/$entity", dict(updated))


def _render_assignment(policy: Policy, scope_type: str, expand: list[Expand]) -> dict[str, Any]:
    body = serialize.policy_assignment(policy, scope_type)
    for option in expand:
        if option.name.lower() == "policy":
            nested = odata.parse_expand(option.options.get("$expand"))
            body["policy"] = _render_policy(policy, scope_type, nested)
    return body


def list_assignments(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    if "$filter" not in request.params:
        raise errors.bad_request(
            "A $filter on scopeId and scopeType is required, e.g. "
            "scopeId eq '/' and scopeType eq 'DirectoryRole'."
        )
    query = common.list_query(
        request,
        filter_spec=ASSIGNMENT_FILTER,
        expandable=("policy",),
        selectable=ASSIGNMENT_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicyAssignment",
    )
    scope_type = _scope(query.node)
    roles = odata.equality_values(query.node, "roleDefinitionId")
    policies = [
        p
        for p in ctx.state.policies.values()
        if scope_type and (roles is None or p.role_definition_id in roles)
    ]
    fragment = ASSIGNMENTS
    if query.expand:
        inner = odata.parse_expand(query.expand[0].options.get("$expand"))
        fragment += f"(policy({','.join(e.name + '()' for e in inner)}))"
    return common.collection(
        ctx,
        request,
        policies,
        key=lambda p: p.seq,
        render=lambda p: _render_assignment(p, scope_type or "DirectoryRole", query.expand),
        query=query,
        fragment=fragment,
        selectable=ASSIGNMENT_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleManagementPolicyAssignment",
    )


def get_assignment(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    assignment_id = params["id"]
    policy_part, _, role_id = assignment_id.rpartition("_")
    policy, scope_type = find_policy(ctx, policy_part)
    if policy.role_definition_id != role_id.lower():
        raise errors.not_found(f"The policy assignment '{assignment_id}' does not exist.")
    expand = odata.parse_expand(request.params.get("$expand"))
    return common.entity(
        request, f"{ASSIGNMENTS}/$entity", _render_assignment(policy, scope_type, expand)
    )


def register(router: Router) -> None:
    read, write = permissions.POLICIES_READ, permissions.POLICIES_WRITE
    router.add("GET", POLICIES, list_policies, any_of=read, pim_service=True)
    router.add("GET", f"{POLICIES}/{{id}}", get_policy, any_of=read, pim_service=True)
    router.add("GET", f"{POLICIES}/{{id}}/rules", list_rules, any_of=read, pim_service=True)
    router.add(
        "GET", f"{POLICIES}/{{id}}/rules/{{ruleId}}", get_rule, any_of=read, pim_service=True
    )
    router.add(
        "PATCH", f"{POLICIES}/{{id}}/rules/{{ruleId}}", update_rule, any_of=write, pim_service=True
    )
    router.add("GET", ASSIGNMENTS, list_assignments, any_of=read, pim_service=True)
    router.add("GET", f"{ASSIGNMENTS}/{{id}}", get_assignment, any_of=read, pim_service=True)
