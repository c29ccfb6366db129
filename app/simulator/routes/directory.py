"""Directory objects: users, groups, service principals, getByIds, organization, subscribedSkus."""

from __future__ import annotations

from typing import Any

from app.simulator import errors, odata, permissions, serialize
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.errors import GraphError
from app.simulator.routes import common
from app.simulator.state import Group, Principal, ServicePrincipal, User

UNSUPPORTED = errors.UNSUPPORTED_QUERY
USER_FILTER = odata.spec(
    {
        "id": ("eq", "in"),
        "userPrincipalName": ("eq", "in", "startswith"),
        "mail": ("eq", "in", "startswith"),
        "displayName": ("eq", "in", "startswith"),
        "userType": ("eq",),
        "accountEnabled": ("eq",),
    },
    unsupported_code=UNSUPPORTED,
)
GROUP_FILTER = odata.spec(
    {
        "id": ("eq", "in"),
        "displayName": ("eq", "in", "startswith"),
        "mailNickname": ("eq",),
        "isAssignableToRole": ("eq",),
        "securityEnabled": ("eq",),
    },
    unsupported_code=UNSUPPORTED,
)
SERVICE_PRINCIPAL_FILTER = odata.spec(
    {"id": ("eq", "in"), "appId": ("eq", "in"), "displayName": ("eq", "startswith")},
    unsupported_code=UNSUPPORTED,
)
SKU_PROPERTIES = (
    "accountName",
    "accountId",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "id",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
)
MEMBER_PROPERTIES = tuple(
    dict.fromkeys(
        serialize.USER_PROPERTIES
        + serialize.GROUP_PROPERTIES
        + serialize.SERVICE_PRINCIPAL_PROPERTIES
    )
)


def _missing(object_id: str) -> GraphError:
    return errors.not_found(
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
        errors.RESOURCE_NOT_FOUND,
    )


def _single(
    request: GraphRequest,
    fragment: str,
    item: dict[str, Any],
    known: tuple[str, ...],
    type_name: str,
) -> GraphResponse:
    selected = odata.apply_select(
        item, odata.parse_select(request.params.get("$select")), known, type_name
    )
    return common.entity(request, fragment, selected)


def _list(
    ctx: SimContext,
    request: GraphRequest,
    objects: list[Any],
    *,
    filter_spec: odata.FilterSpec | None,
    render: Any,
    known: tuple[str, ...],
    fragment: str,
    type_name: str,
) -> GraphResponse:
    query = common.list_query(
        request, filter_spec=filter_spec, selectable=known, type_name=type_name
    )
    rendered = [(obj.seq, render(obj)) for obj in objects]
    items = [pair for pair in rendered if query.node is None or odata.evaluate(query.node, pair[1])]
    return common.collection(
        ctx,
        request,
        items,
        key=lambda pair: pair[0],
        render=lambda pair: pair[1],
        query=query,
        fragment=fragment,
        selectable=known,
        type_name=type_name,
    )


def list_users(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    return _list(
        ctx,
        request,
        list(ctx.state.users.values()),
        filter_spec=USER_FILTER,
        render=lambda u: serialize.user(u, selected="$select" in request.params),
        known=serialize.USER_PROPERTIES,
        fragment="users",
        type_name="microsoft.graph.user",
    )


def get_user(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    user = ctx.state.user_by_id_or_upn(params["id"])
    if user is None:
        raise _missing(params["id"])
    return _single(
        request,
        "users/$entity",
        serialize.user(user, selected="$select" in request.params),
        serialize.USER_PROPERTIES,
        "microsoft.graph.user",
    )


def list_groups(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    return _list(
        ctx,
        request,
        list(ctx.state.groups.values()),
        filter_spec=GROUP_FILTER,
        render=serialize.group,
        known=serialize.GROUP_PROPERTIES,
        fragment="groups",
        type_name="microsoft.graph.group",
    )


def _group(ctx: SimContext, group_id: str) -> Group:
    group = ctx.state.groups.get(group_id.lower())
    if group is None:
        raise _missing(group_id)
    return group


def get_group(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    group = _group(ctx, params["id"])
    return _single(
        request,
        "groups/$entity",
        serialize.group(group),
        serialize.GROUP_PROPERTIES,
        "microsoft.graph.group",
    )


def _members(ctx: SimContext, request: GraphRequest, members: list[Principal]) -> GraphResponse:
    return _list(
        ctx,
        request,
        members,
        filter_spec=None,
        render=serialize.principal,
        known=MEMBER_PROPERTIES,
        fragment="directoryObjects",
        type_name="microsoft.graph.directoryObject",
    )


def list_members(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    group = _group(ctx, params["id"])
    members = [m for m in (ctx.state.principal(i) for i in group.member_ids) if m is not None]
    return _members(ctx, request, members)


def list_transitive_members(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    group = _group(ctx, params["id"])
    return _members(ctx, request, ctx.state.transitive_members(group.id))


def list_service_principals(
    ctx: SimContext, request: GraphRequest, _: dict[str, str]
) -> GraphResponse:
    return _list(
        ctx,
        request,
        list(ctx.state.service_principals.values()),
        filter_spec=SERVICE_PRINCIPAL_FILTER,
        render=serialize.service_principal,
        known=serialize.SERVICE_PRINCIPAL_PROPERTIES,
        fragment="servicePrincipals",
        type_name="microsoft.graph.servicePrincipal",
    )


def get_service_principal(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    sp = ctx.state.service_principals.get(params["id"].lower())
    if sp is None:
        raise _missing(params["id"])
    return _single(
        request,
        "servicePrincipals/$entity",
        serialize.service_principal(sp),
        serialize.SERVICE_PRINCIPAL_PROPERTIES,
        "microsoft.graph.servicePrincipal",
    )


def get_by_ids(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    body = common.json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        raise errors.bad_request(
            "The body must carry 'ids', a list of object ids.", errors.REQUEST_BAD_REQUEST
        )
    ids = body["ids"]
    if len(ids) > 1000:
        raise errors.bad_request("At most 1000 ids may be requested.", errors.REQUEST_BAD_REQUEST)
    types = body.get("types")
    wanted: set[type] = set()
    if types is not None:
        if not isinstance(types, list):
            raise errors.bad_request("'types' must be a list.", errors.REQUEST_BAD_REQUEST)
        mapping: dict[str, type] = {
            "user": User,
            "group": Group,
            "serviceprincipal": ServicePrincipal,
        }
        for name in types:
            kind = mapping.get(str(name).lower().removeprefix("microsoft.graph."))
            if kind is None:
                raise errors.bad_request(f"Unsupported type '{name}'.", errors.REQUEST_BAD_REQUEST)
            wanted.add(kind)
    found = []
    for object_id in ids:
        obj = ctx.state.principal(str(object_id).lower())
        if obj is not None and (not wanted or type(obj) in wanted):
            found.append(serialize.principal(obj))
    return GraphResponse(
        200, {"@odata.context": common.context_url(request, "directoryObjects"), "value": found}
    )


def list_organization(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    body = serialize.organization(ctx.state)
    selected = odata.apply_select(
        body,
        odata.parse_select(request.params.get("$select")),
        tuple(body),
        "microsoft.graph.organization",
    )
    return GraphResponse(
        200, {"@odata.context": common.context_url(request, "organization"), "value": [selected]}
    )


def list_skus(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    # Only $select is supported; $filter is refused (reference §9, subscribedsku-list.md).
    for option in ("$filter", "$top", "$orderby", "$search"):
        if option in request.params:
            raise errors.bad_request(
                f"The query option '{option}' is not supported on subscribedSkus."
            )
    query = common.list_query(
        request,
        filter_spec=None,
        selectable=SKU_PROPERTIES,
        type_name="microsoft.graph.subscribedSku",
    )
    skus = [serialize.sku(ctx.state, s) for s in ctx.state.skus]
    return common.collection(
        ctx,
        request,
        list(enumerate(skus)),
        key=lambda pair: pair[0],
        render=lambda pair: pair[1],
        query=query,
        fragment="subscribedSkus",
        selectable=SKU_PROPERTIES,
        type_name="microsoft.graph.subscribedSku",
    )


def get_sku(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    for s in ctx.state.skus:
        body = serialize.sku(ctx.state, s)
        if body["id"].lower() == params["id"].lower():
            return _single(
                request,
                "subscribedSkus/$entity",
                body,
                SKU_PROPERTIES,
                "microsoft.graph.subscribedSku",
            )
    raise _missing(params["id"])


def register(router: Router) -> None:
    router.add("GET", "users", list_users, any_of=permissions.USERS_READ)
    router.add("GET", "users/{id}", get_user, any_of=permissions.USERS_READ)
    router.add("GET", "groups", list_groups, any_of=permissions.GROUPS_READ)
    router.add("GET", "groups/{id}", get_group, any_of=permissions.GROUPS_READ)
    router.add("GET", "groups/{id}/members", list_members, any_of=permissions.GROUPS_READ)
    router.add(
        "GET",
        "groups/{id}/transitiveMembers",
        list_transitive_members,
        any_of=permissions.GROUPS_READ,
    )
    router.add(
        "GET",
        "servicePrincipals",
        list_service_principals,
        any_of=permissions.SERVICE_PRINCIPALS_READ,
    )
    router.add(
        "GET",
        "servicePrincipals/{id}",
        get_service_principal,
        any_of=permissions.SERVICE_PRINCIPALS_READ,
    )
    for path in ("directoryObjects/getByIds", "directoryObjects/microsoft.graph.getByIds"):
        router.add("POST", path, get_by_ids, any_of=permissions.DIRECTORY_OBJECTS_READ)
    router.add("GET", "organization", list_organization, any_of=permissions.ORGANIZATION_READ)
    router.add("GET", "subscribedSkus", list_skus, any_of=permissions.SUBSCRIBED_SKUS_READ)
    router.add("GET", "subscribedSkus/{id}", get_sku, any_of=permissions.SUBSCRIBED_SKUS_READ)
