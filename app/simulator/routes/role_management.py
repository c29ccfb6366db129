"""``/roleManagement/directory``: role definitions, role assignments, schedules and instances."""

from __future__ import annotations

import base64
import bisect
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.simulator import errors, odata, permissions, serialize
from app.simulator.dispatch import GraphRequest, GraphResponse, Handler, Router, SimContext
from app.simulator.ids import role_assignment_id
from app.simulator.odata import Expand, Node
from app.simulator.routes import common
from app.simulator.serialize import USER_PROPERTIES
from app.simulator.state import Schedule, ScheduleKind, SimState

BASE = "roleManagement/directory"
EQ_NE = ("eq", "ne")

ROLE_DEFINITION_PROPERTIES = (
    "id",
    "description",
    "displayName",
    "isBuiltIn",
    "isEnabled",
    "resourceScopes",
    "templateId",
    "version",
    "rolePermissions",
    "inheritsPermissionsFrom",
)
ROLE_ASSIGNMENT_PROPERTIES = (
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "resourceScope",
    "condition",
)
SCHEDULE_PROPERTIES = (
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "createdUsing",
    "createdDateTime",
    "modifiedDateTime",
    "status",
    "assignmentType",
    "memberType",
    "scheduleInfo",
)
INSTANCE_PROPERTIES = (
    "id",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "startDateTime",
    "endDateTime",
    "assignmentType",
    "memberType",
    "roleAssignmentOriginId",
    "roleAssignmentScheduleId",
    "roleEligibilityScheduleId",
)
PRINCIPAL_PROPERTIES = (*USER_PROPERTIES, "appId", "servicePrincipalType", "isAssignableToRole")

ROLE_DEFINITION_FILTER = odata.spec(
    {
        "id": ("eq", "in"),
        "templateId": ("eq", "in"),
        "displayName": ("eq", "in", "startswith"),
        "isBuiltIn": ("eq",),
    }
)
ROLE_ASSIGNMENT_FILTER = odata.spec(
    {
        "id": ("eq", "in"),
        "principalId": ("eq", "in"),
        "roleDefinitionId": ("eq", "in"),
        "directoryScopeId": ("eq", "in"),
        "appScopeId": ("eq", "in"),
    }
)
SCHEDULE_FILTER = odata.spec(
    dict.fromkeys(
        (
            "id",
            "principalId",
            "roleDefinitionId",
            "directoryScopeId",
            "appScopeId",
            "assignmentType",
            "memberType",
            "status",
            "createdUsing",
        ),
        EQ_NE,
    )
)
INSTANCE_FILTER = odata.spec(
    dict.fromkeys(
        (
            "id",
            "principalId",
            "roleDefinitionId",
            "directoryScopeId",
            "appScopeId",
            "assignmentType",
            "memberType",
            "roleAssignmentOriginId",
            "roleAssignmentScheduleId",
            "roleEligibilityScheduleId",
            "startDateTime",
            "endDateTime",
        ),
        EQ_NE,
    )
)


# --- expansion ---------------------------------------------------------------------------------
def expand_into(
    ctx: SimContext,
    item: dict[str, Any],
    expand: list[Expand],
    *,
    activated_using: str | None = None,
) -> dict[str, Any]:
    state = ctx.state
    for option in expand:
        name = option.name.lower()
        if name == "principal":
            principal = state.principal(item["principalId"])
            rendered = serialize.principal(principal) if principal else None
            item["principal"] = common.select_expanded(
                rendered, option, PRINCIPAL_PROPERTIES, "microsoft.graph.directoryObject"
            )
        elif name == "roledefinition":
            role = state.roles.get(item["roleDefinitionId"])
            rendered = serialize.role_definition(role) if role else None
            item["roleDefinition"] = common.select_expanded(
                rendered,
                option,
                ROLE_DEFINITION_PROPERTIES,
                "microsoft.graph.unifiedRoleDefinition",
            )
        elif name == "directoryscope":
            item["directoryScope"] = {"id": item.get("directoryScopeId")}
        elif name == "appscope":
            item["appScope"] = None
        elif name == "activatedusing":
            eligibility = state.eligibles.get(activated_using or "")
            item["activatedUsing"] = (
                serialize.eligibility_schedule(eligibility, ctx.clock.now())
                if eligibility
                else None
            )
    return item


# --- role definitions ----------------------------------------------------------------------------
def list_role_definitions(
    ctx: SimContext, request: GraphRequest, _: dict[str, str]
) -> GraphResponse:
    query = common.list_query(
        request,
        filter_spec=ROLE_DEFINITION_FILTER,
        expandable=("inheritsPermissionsFrom",),
        selectable=ROLE_DEFINITION_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleDefinition",
    )
    roles = [serialize.role_definition(role) for role in ctx.state.roles.values()]
    items = common.filtered(roles, query.node)
    order = {role_id: index for index, role_id in enumerate(ctx.state.roles)}
    return common.collection(
        ctx,
        request,
        items,
        key=lambda r: order[r["id"]],
        render=lambda r: r,
        query=query,
        fragment=f"{BASE}/roleDefinitions",
        selectable=ROLE_DEFINITION_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleDefinition",
    )


def get_role_definition(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    role = ctx.state.roles.get(params["id"].lower())
    if role is None:
        raise errors.not_found(
            f"Resource '{params['id']}' does not exist or one of its queried reference-property "
            "objects are not present.",
            errors.RESOURCE_NOT_FOUND,
        )
    item = odata.apply_select(
        serialize.role_definition(role),
        odata.parse_select(request.params.get("$select")),
        ROLE_DEFINITION_PROPERTIES,
        "microsoft.graph.unifiedRoleDefinition",
    )
    return common.entity(request, f"{BASE}/roleDefinitions/$entity", item)


# --- schedule resolvers ------------------------------------------------------------------------
def _schedule_fields(now: datetime) -> dict[str, Callable[[Schedule], Any]]:
    return {
        "id": lambda s: s.id,
        "principalid": lambda s: s.principal_id,
        "roledefinitionid": lambda s: s.role_definition_id,
        "directoryscopeid": lambda s: s.directory_scope_id,
        "appscopeid": lambda s: None,
        "assignmenttype": lambda s: s.assignment_type,
        "membertype": lambda s: "Direct",
        "status": lambda s: "Granted" if s.start and s.start > now else "Provisioned",
        "createdusing": lambda s: s.created_using,
    }


def _resolver(fields: dict[str, Callable[[Any], Any]]) -> odata.Resolver:
    def resolve(record: Any, segments: Any) -> Any:
        getter = fields.get("/".join(segments).lower())
        return getter(record) if getter else None

    return resolve


def _candidates(
    state: SimState, kind: ScheduleKind, node: Node | None, *, via_groups: bool = False
) -> list[Schedule]:
    """Schedules that can match: narrowed by the principal/role index when the filter pins one."""
    store = state.store(kind)
    principals = odata.equality_values(node, "principalId")
    roles = odata.equality_values(node, "roleDefinitionId")
    if principals is not None:
        ids: set[str] = set()
        for principal_id in principals:
            ids.update(store.by_principal.get(principal_id, ()))
            if via_groups:
                for group in state.groups_containing(principal_id):
                    ids.update(store.by_principal.get(group.id, ()))
        schedules = [store.by_id[i] for i in ids]
        if roles is not None:
            schedules = [s for s in schedules if s.role_definition_id in roles]
        return sorted(schedules, key=lambda s: s.seq)
    if roles is not None:
        if len(roles) == 1:
            return store.ordered(next(iter(roles)))
        ids = set()
        for role_id in roles:
            ids.update(store.by_role.get(role_id, ()))
        return sorted((store.by_id[i] for i in ids), key=lambda s: s.seq)
    return store.ordered()


def _seq_after(after: Any) -> int | None:
    """The ``seq`` a page token of a schedule-ordered collection points after."""
    if after is None:
        return None
    position = after[0] if isinstance(after, list) and after else after
    if not isinstance(position, int):
        raise errors.bad_request("The $skiptoken is invalid or has expired.")
    return position


def _from_seq(schedules: list[Schedule], seq: int | None, *, inclusive: bool) -> Iterator[Schedule]:
    """The schedules (sorted by ``seq``) from ``seq`` on: a page starts with a binary search."""
    if seq is None:
        return iter(schedules)
    find = bisect.bisect_left if inclusive else bisect.bisect_right
    return itertools.islice(schedules, find(schedules, seq, key=lambda s: s.seq), None)


# --- role assignments ----------------------------------------------------------------------------
def list_role_assignments(
    ctx: SimContext, request: GraphRequest, _: dict[str, str]
) -> GraphResponse:
    query = common.list_query(
        request,
        filter_spec=ROLE_ASSIGNMENT_FILTER,
        expandable=("principal", "roleDefinition", "directoryScope", "appScope"),
        selectable=ROLE_ASSIGNMENT_PROPERTIES,
        type_name="microsoft.graph.unifiedRoleAssignment",
    )
    now = ctx.clock.now()
    fields = {
        **_schedule_fields(now),
        "id": lambda s: role_assignment_id(s.role_definition_id, s.principal_id),
    }
    candidates = _candidates(ctx.state, "active", query.node)
    after = _seq_after(common.after_position(query))
    resolver = _resolver(fields)

    def effective() -> Iterator[Schedule]:
        return (s for s in _from_seq(candidates, after, inclusive=False) if s.effective(now))

    return common.lazy_collection(
        ctx,
        request,
        effective(),
        key=lambda s: s.seq,
        render=lambda s: expand_into(ctx, serialize.role_assignment(s), query.expand),
        query=query,
        fragment=common.expand_fragment(f"{BASE}/roleAssignments", query.expand),
        selectable=ROLE_ASSIGNMENT_PROPERTIES + tuple(e.name for e in query.expand),
        type_name="microsoft.graph.unifiedRoleAssignment",
        resolver=resolver,
        count=lambda: len(
            common.filtered([s for s in candidates if s.effective(now)], query.node, resolver)
        ),
    )


def _decode_assignment_id(assignment_id: str) -> tuple[str, str] | None:
    raw_id = assignment_id.rsplit("-", 1)[0] if assignment_id.endswith("-1") else assignment_id
    try:
        raw = base64.urlsafe_b64decode(raw_id + "=" * (-len(raw_id) % 4))
    except ValueError:
        return None
    if len(raw) != 32:
        return None
    return str(uuid.UUID(bytes_le=raw[:16])), str(uuid.UUID(bytes_le=raw[16:]))


def get_role_assignment(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    decoded = _decode_assignment_id(params["id"])
    now = ctx.clock.now()
    match = None
    if decoded is not None:
        role_id, principal_id = decoded
        match = next(
            (
                s
                for s in ctx.state.actives.for_principal(principal_id)
                if s.role_definition_id == role_id and s.effective(now)
            ),
            None,
        )
    if match is None:
        raise errors.not_found(
            f"Resource '{params['id']}' does not exist or one of its queried reference-property "
            "objects are not present.",
            errors.RESOURCE_NOT_FOUND,
        )
    expand = odata.parse_expand(request.params.get("$expand"))
    item = expand_into(ctx, serialize.role_assignment(match), expand)
    return common.entity(request, f"{BASE}/roleAssignments/$entity", item)


# --- schedules -----------------------------------------------------------------------------------
def _schedules(kind: ScheduleKind) -> tuple[str, Callable[[Schedule, datetime], dict[str, Any]]]:
    if kind == "active":
        return "roleAssignmentSchedules", serialize.assignment_schedule
    return "roleEligibilitySchedules", serialize.eligibility_schedule


def make_list_schedules(kind: ScheduleKind) -> Handler:
    collection_name, render_schedule = _schedules(kind)
    type_name = (
        "microsoft.graph.unifiedRoleAssignmentSchedule"
        if kind == "active"
        else "microsoft.graph.unifiedRoleEligibilitySchedule"
    )
    expandable: tuple[str, ...] = ("principal", "roleDefinition", "directoryScope", "appScope")
    if kind == "active":
        expandable += ("activatedUsing",)

    def handler(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        query = common.list_query(
            request,
            filter_spec=SCHEDULE_FILTER,
            expandable=expandable,
            selectable=SCHEDULE_PROPERTIES,
            type_name=type_name,
        )
        now = ctx.clock.now()
        candidates = _candidates(ctx.state, kind, query.node)
        after = _seq_after(common.after_position(query))
        resolver = _resolver(_schedule_fields(now))
        return common.lazy_collection(
            ctx,
            request,
            _from_seq(candidates, after, inclusive=False),
            key=lambda s: s.seq,
            render=lambda s: expand_into(
                ctx, render_schedule(s, now), query.expand, activated_using=s.activated_using
            ),
            query=query,
            fragment=common.expand_fragment(f"{BASE}/{collection_name}", query.expand),
            selectable=SCHEDULE_PROPERTIES + tuple(e.name for e in query.expand),
            type_name=type_name,
            resolver=resolver,
            count=lambda: len(common.filtered(candidates, query.node, resolver)),
        )

    return handler


def make_get_schedule(kind: ScheduleKind) -> Handler:
    collection_name, render_schedule = _schedules(kind)

    def handler(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        schedule = ctx.state.store(kind).get(params["id"])
        if schedule is None:
            raise errors.not_found(f"The schedule '{params['id']}' does not exist.")
        expand = odata.parse_expand(request.params.get("$expand"))
        item = expand_into(
            ctx,
            render_schedule(schedule, ctx.clock.now()),
            expand,
            activated_using=schedule.activated_using,
        )
        return common.entity(request, f"{BASE}/{collection_name}/$entity", item)

    return handler


# --- instances -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceRow:
    """One instance: a schedule's own (``member_id`` None), or a member's of an assigned group."""

    schedule: Schedule
    member_id: str | None
    order: tuple[int, int]

    def body(self) -> dict[str, Any]:
        if self.schedule.kind == "active":
            return serialize.assignment_instance(self.schedule, self.member_id)
        return serialize.eligibility_instance(self.schedule, self.member_id)


def _instance_fields(kind: ScheduleKind) -> dict[str, Callable[[InstanceRow], Any]]:
    fields: dict[str, Callable[[InstanceRow], Any]] = {
        "principalid": lambda r: r.member_id or r.schedule.principal_id,
        "membertype": lambda r: "Group" if r.member_id else "Direct",
        "roledefinitionid": lambda r: r.schedule.role_definition_id,
        "directoryscopeid": lambda r: r.schedule.directory_scope_id,
        "appscopeid": lambda r: None,
        "startdatetime": lambda r: r.schedule.start,
        "enddatetime": lambda r: r.schedule.end,
        "id": lambda r: r.body()["id"],
    }
    if kind == "active":
        fields["assignmenttype"] = lambda r: r.schedule.assignment_type
        fields["roleassignmentscheduleid"] = lambda r: r.schedule.id
        fields["roleassignmentoriginid"] = lambda r: role_assignment_id(
            r.schedule.role_definition_id, r.schedule.principal_id
        )
    else:
        fields["roleeligibilityscheduleid"] = lambda r: r.schedule.id
    return fields


def _instance_rows(
    ctx: SimContext, kind: ScheduleKind, node: Node | None, after: Any = None
) -> Iterator[InstanceRow]:
    """Instances in output order, from just after the page token's position ``after``."""
    now = ctx.clock.now()
    seq = _seq_after(after)
    position = tuple(after) if isinstance(after, list) else None
    schedules = _candidates(ctx.state, kind, node, via_groups=True)
    for schedule in _from_seq(schedules, seq, inclusive=True):
        if not schedule.effective(now):
            continue
        for index, member_id in enumerate(serialize.instance_members(ctx.state, schedule)):
            order = (schedule.seq, index)
            if position is not None and order <= position:
                continue
            yield InstanceRow(schedule, member_id, order)


def make_list_instances(kind: ScheduleKind) -> Handler:
    collection_name = (
        "roleAssignmentScheduleInstances"
        if kind == "active"
        else "roleEligibilityScheduleInstances"
    )
    type_name = (
        "microsoft.graph.unifiedRoleAssignmentScheduleInstance"
        if kind == "active"
        else "microsoft.graph.unifiedRoleEligibilityScheduleInstance"
    )
    expandable: tuple[str, ...] = ("principal", "roleDefinition", "directoryScope", "appScope")
    if kind == "active":
        expandable += ("activatedUsing",)
    resolver = _resolver(_instance_fields(kind))

    def handler(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        query = common.list_query(
            request,
            filter_spec=INSTANCE_FILTER,
            expandable=expandable,
            selectable=INSTANCE_PROPERTIES,
            type_name=type_name,
        )
        after = common.after_position(query)
        return common.lazy_collection(
            ctx,
            request,
            _instance_rows(ctx, kind, query.node, after),
            key=lambda r: list(r.order),
            render=lambda r: _render_instance(ctx, r, query.expand),
            query=query,
            fragment=common.expand_fragment(f"{BASE}/{collection_name}", query.expand),
            selectable=INSTANCE_PROPERTIES + tuple(e.name for e in query.expand),
            type_name=type_name,
            resolver=resolver,
            count=lambda: len(
                common.filtered(_instance_rows(ctx, kind, query.node), query.node, resolver)
            ),
        )

    return handler


def _render_instance(ctx: SimContext, row: InstanceRow, expand: list[Expand]) -> dict[str, Any]:
    body = row.body()
    for option in expand:
        if option.name.lower() == "activatedusing":
            eligibility = ctx.state.eligibles.get(row.schedule.activated_using or "")
            body["activatedUsing"] = (
                serialize.eligibility_instance(eligibility) if eligibility else None
            )
    rest = [e for e in expand if e.name.lower() != "activatedusing"]
    return expand_into(ctx, body, rest)


def make_get_instance(kind: ScheduleKind) -> Handler:
    collection_name = (
        "roleAssignmentScheduleInstances"
        if kind == "active"
        else "roleEligibilityScheduleInstances"
    )

    def handler(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        wanted = params["id"]
        row = next((r for r in _instance_rows(ctx, kind, None) if r.body()["id"] == wanted), None)
        if row is None:
            raise errors.not_found(f"The instance '{wanted}' does not exist.")
        expand = odata.parse_expand(request.params.get("$expand"))
        return common.entity(
            request, f"{BASE}/{collection_name}/$entity", _render_instance(ctx, row, expand)
        )

    return handler


def register(router: Router) -> None:
    router.add(
        "GET",
        f"{BASE}/roleDefinitions",
        list_role_definitions,
        any_of=permissions.ROLE_DEFINITIONS_READ,
    )
    router.add(
        "GET",
        f"{BASE}/roleDefinitions/{{id}}",
        get_role_definition,
        any_of=permissions.ROLE_DEFINITIONS_READ,
    )
    router.add(
        "GET",
        f"{BASE}/roleAssignments",
        list_role_assignments,
        any_of=permissions.ROLE_ASSIGNMENTS_READ,
    )
    router.add(
        "GET",
        f"{BASE}/roleAssignments/{{id}}",
        get_role_assignment,
        any_of=permissions.ROLE_ASSIGNMENTS_READ,
    )
    for kind, perms, schedules, instances in (
        (
            "active",
            permissions.ASSIGNMENT_SCHEDULES_READ,
            "roleAssignmentSchedules",
            "roleAssignmentScheduleInstances",
        ),
        (
            "eligible",
            permissions.ELIGIBILITY_SCHEDULES_READ,
            "roleEligibilitySchedules",
            "roleEligibilityScheduleInstances",
        ),
    ):
        typed_kind: ScheduleKind = "active" if kind == "active" else "eligible"
        router.add(
            "GET",
            f"{BASE}/{schedules}",
            make_list_schedules(typed_kind),
            any_of=perms,
            pim_service=True,
        )
        router.add(
            "GET",
            f"{BASE}/{schedules}/{{id}}",
            make_get_schedule(typed_kind),
            any_of=perms,
            pim_service=True,
        )
        router.add(
            "GET",
            f"{BASE}/{instances}",
            make_list_instances(typed_kind),
            any_of=perms,
            pim_service=True,
        )
        router.add(
            "GET",
            f"{BASE}/{instances}/{{id}}",
            make_get_instance(typed_kind),
            any_of=perms,
            pim_service=True,
        )
