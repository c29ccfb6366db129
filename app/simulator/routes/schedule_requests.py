"""``role{Assignment,Eligibility}ScheduleRequests``: list, create, get, cancel (reference §5)."""

from __future__ import annotations

from typing import Any

from app.simulator import errors, odata, permissions, serialize
from app.simulator.dispatch import GraphRequest, GraphResponse, Handler, Router, SimContext
from app.simulator.errors import GraphError
from app.simulator.pim import Caller
from app.simulator.routes import common
from app.simulator.routes.role_management import BASE, expand_into
from app.simulator.state import RequestKind, ScheduleRequest

REQUEST_PROPERTIES = (
    "id",
    "status",
    "createdDateTime",
    "completedDateTime",
    "approvalId",
    "customData",
    "action",
    "principalId",
    "roleDefinitionId",
    "directoryScopeId",
    "appScopeId",
    "isValidationOnly",
    "targetScheduleId",
    "justification",
    "createdBy",
    "scheduleInfo",
    "ticketInfo",
)
# Documented filterable: id, status, principalId, roleDefinitionId, targetScheduleId,
# directoryScopeId, appScopeId, createdBy (eq, ne). ``action`` is not marked filterable but third
# parties use it successfully (reference §11.2 [obs]), so it is accepted too.
REQUEST_FILTER = odata.spec(
    dict.fromkeys(
        (
            "id",
            "status",
            "principalId",
            "roleDefinitionId",
            "targetScheduleId",
            "directoryScopeId",
            "appScopeId",
            "createdBy/user/id",
            "createdBy/application/id",
            "action",
        ),
        ("eq", "ne"),
    )
)
REMOVE_ACTIONS = frozenset({"adminremove", "selfdeactivate"})


def _names(kind: RequestKind) -> tuple[str, str]:
    if kind == "assignment":
        return (
            "roleAssignmentScheduleRequests",
            "microsoft.graph.unifiedRoleAssignmentScheduleRequest",
        )
    return (
        "roleEligibilityScheduleRequests",
        "microsoft.graph.unifiedRoleEligibilityScheduleRequest",
    )


def _render(
    ctx: SimContext, request: ScheduleRequest, expand: list[odata.Expand]
) -> dict[str, Any]:
    body = serialize.schedule_request(request)
    for option in expand:
        if option.name.lower() == "targetschedule":
            store = ctx.state.store("active" if request.kind == "assignment" else "eligible")
            schedule = store.get(request.target_schedule_id or "")
            now = ctx.clock.now()
            if schedule is None:
                body["targetSchedule"] = None
            elif schedule.kind == "active":
                body["targetSchedule"] = serialize.assignment_schedule(schedule, now)
            else:
                body["targetSchedule"] = serialize.eligibility_schedule(schedule, now)
    rest = [e for e in expand if e.name.lower() != "targetschedule"]
    schedule = ctx.state.actives.get(request.target_schedule_id or "")
    return expand_into(
        ctx, body, rest, activated_using=schedule.activated_using if schedule else None
    )


def make_list(kind: RequestKind) -> Handler:
    collection_name, type_name = _names(kind)
    expandable = ["principal", "roleDefinition", "targetSchedule", "directoryScope", "appScope"]
    if kind == "assignment":
        expandable.append("activatedUsing")

    def handler(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        query = common.list_query(
            request,
            filter_spec=REQUEST_FILTER,
            expandable=expandable,
            selectable=REQUEST_PROPERTIES,
            type_name=type_name,
        )
        requests = [r for r in ctx.state.requests.values() if r.kind == kind]
        if query.node is not None:
            requests = [
                r for r in requests if odata.evaluate(query.node, serialize.schedule_request(r))
            ]
        return common.collection(
            ctx,
            request,
            requests,
            key=lambda r: r.seq,
            render=lambda r: _render(ctx, r, query.expand),
            query=query,
            fragment=common.expand_fragment(f"{BASE}/{collection_name}", query.expand),
            selectable=REQUEST_PROPERTIES + tuple(e.name for e in query.expand),
            type_name=type_name,
        )

    return handler


def _check_write_permission(ctx: SimContext, body: Any) -> None:
    """Holding only a *.Remove.Directory permission allows removals and nothing else."""
    granted = ctx.state.granted_permissions
    full = {
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
    }
    if granted & full:
        return
    action = str(body.get("action", "")).lower() if isinstance(body, dict) else ""
    if action not in REMOVE_ACTIONS:
        raise GraphError(
            403,
            "UnknownError",
            '{"errorCode":"PermissionScopeNotGranted","message":"Authorization failed due to '
            'missing permission scope RoleManagement.ReadWrite.Directory.",'
            '"instanceAnnotations":[]}',
        )


def make_create(kind: RequestKind) -> Handler:
    collection_name, _ = _names(kind)

    def handler(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        body = common.json_body(request)
        _check_write_permission(ctx, body)
        caller = Caller(
            mfa=(request.header("x-sim-mfa") or "").lower() == "satisfied",
            acrs=frozenset(
                claim.strip()
                for claim in (request.header("x-sim-acrs") or "").split(",")
                if claim.strip()
            ),
        )
        created = ctx.engine.submit(kind, body, now=ctx.clock.now(), caller=caller)
        return common.entity(
            request,
            f"{BASE}/{collection_name}/$entity",
            serialize.schedule_request(created),
            status=201,
        )

    return handler


def make_get(kind: RequestKind) -> Handler:
    collection_name, _ = _names(kind)

    def handler(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        found = ctx.state.requests.get(params["id"])
        if found is None or found.kind != kind:
            raise errors.not_found(f"The request '{params['id']}' does not exist.")
        expand = odata.parse_expand(request.params.get("$expand"))
        item = odata.apply_select(
            _render(ctx, found, expand),
            odata.parse_select(request.params.get("$select")),
            REQUEST_PROPERTIES + tuple(e.name for e in expand),
            _names(kind)[1],
        )
        return common.entity(request, f"{BASE}/{collection_name}/$entity", item)

    return handler


def make_cancel(kind: RequestKind) -> Handler:
    def handler(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        common.require_p2(ctx)
        ctx.engine.cancel(kind, params["id"], now=ctx.clock.now())
        return GraphResponse(204)

    return handler


def register(router: Router) -> None:
    specs: list[tuple[RequestKind, frozenset[str], frozenset[str]]] = [
        ("assignment", permissions.ASSIGNMENT_REQUESTS_READ, permissions.ASSIGNMENT_REQUESTS_WRITE),
        (
            "eligibility",
            permissions.ELIGIBILITY_REQUESTS_READ,
            permissions.ELIGIBILITY_REQUESTS_WRITE,
        ),
    ]
    for kind, read, write in specs:
        name, _ = _names(kind)
        path = f"{BASE}/{name}"
        router.add("GET", path, make_list(kind), any_of=read, pim_service=True)
        router.add("POST", path, make_create(kind), any_of=write, pim_service=True)
        router.add("GET", f"{path}/{{id}}", make_get(kind), any_of=read, pim_service=True)
        for verb in ("cancel", "microsoft.graph.cancel"):
            router.add(
                "POST", f"{path}/{{id}}/{verb}", make_cancel(kind), any_of=write, pim_service=True
            )
