"""The ``/_sim`` control API: look inside the tenant and turn its knobs (no auth; loopback only).

Kept outside ``/v1.0`` so it never collides with Graph paths (DESIGN.md, "Simulated tenant
control API").
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.simulator import lifecycle, serialize
from app.simulator.activity import ActivityGenerator, ActivityRequest, inject_outside_pim
from app.simulator.clock import FakeClock
from app.simulator.dispatch import SimContext
from app.simulator.errors import GraphError
from app.simulator.faults import SimLimits
from app.simulator.state import Group, Schedule, SimState
from app.simulator.timefmt import format_datetime, format_optional


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(pattern="^(approve|deny)$")
    approver_id: str


class DriftAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal_id: str
    role_definition_id: str
    directory_scope_id: str = "/"
    actor_id: str | None = None


class ClockStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0)


class Permissions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    granted: list[str]


class Licensing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p2: bool


def _schedule_json(state: SimState, s: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": s.id,
        "principal_id": s.principal_id,
        "principal_type": _principal_type(state, s.principal_id),
        "role_definition_id": s.role_definition_id,
        "directory_scope_id": s.directory_scope_id,
        "kind": s.kind,
        "assignment_type": s.assignment_type if s.kind == "active" else None,
        "created_outside_pim": s.outside_pim,
        "start": format_optional(s.start),
        "end": format_optional(s.end),
        "created_using": s.created_using,
    }


def _principal_type(state: SimState, principal_id: str) -> str | None:
    if principal_id in state.users:
        return "user"
    if principal_id in state.groups:
        return "group"
    if principal_id in state.service_principals:
        return "servicePrincipal"
    return None


def state_json(state: SimState) -> dict[str, Any]:
    return {
        "tenant_id": state.tenant_id,
        "tenant_name": state.tenant_name,
        "domain": state.domain,
        "p2": state.p2,
        "users": [
            {
                "id": u.id,
                "display_name": u.display_name,
                "user_principal_name": u.user_principal_name,
                "mail": u.mail,
                "user_type": u.user_type,
                "has_mailbox": u.has_mailbox,
            }
            for u in state.users.values()
        ],
        "groups": [
            {
                "id": g.id,
                "display_name": g.display_name,
                "is_assignable_to_role": g.is_assignable_to_role,
                "member_ids": list(g.member_ids),
            }
            for g in state.groups.values()
        ],
        "service_principals": [
            {"id": sp.id, "app_id": sp.app_id, "display_name": sp.display_name}
            for sp in state.service_principals.values()
        ],
        "active_assignments": [_schedule_json(state, s) for s in state.actives],
        "eligible_assignments": [_schedule_json(state, s) for s in state.eligibles],
        "policies": {
            p.role_definition_id: {
                "policy_id": p.id,
                "last_modified": format_optional(p.last_modified_at),
                "rules": p.rules,
            }
            for p in state.policies.values()
        },
        "review_definitions": [r.body for r in state.reviews.values()],
        "granted_permissions": sorted(state.granted_permissions),
    }


def _error(status: int, message: str, code: str = "InvalidRequest") -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw else {}


def routes(ctx: SimContext) -> list[Route]:
    state = ctx.state

    def now_advanced() -> None:
        lifecycle.advance(state, ctx.clock.now())

    async def profile(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                "auth": {"kind": "none"},
                "break_glass_ids": state.profile.break_glass_ids,
                "bindings": state.profile.bindings,
                "comms": state.profile.comms,
            }
        )

    async def get_state(_: Request) -> JSONResponse:
        now_advanced()
        return JSONResponse(state_json(state))

    async def timeline(request: Request) -> JSONResponse:
        now_advanced()
        since = int(request.query_params.get("since_seq", "0") or 0)
        return JSONResponse(
            [
                {
                    "seq": e.seq,
                    "at": format_datetime(e.at),
                    "principal_id": e.principal_id,
                    "role_definition_id": e.role_definition_id,
                    "directory_scope_id": e.directory_scope_id,
                    "kind": e.kind,
                    "change": e.change,
                    "cause": e.cause,
                    "schedule_id": e.schedule_id,
                }
                for e in state.timeline
                if e.seq > since
            ]
        )

    async def outbox(_: Request) -> JSONResponse:
        return JSONResponse(
            [
                {
                    "seq": m.seq,
                    "at": format_datetime(m.at),
                    "sender_id": m.sender_id,
                    "sender": m.sender_address,
                    "to": m.to,
                    "cc": m.cc,
                    "bcc": m.bcc,
                    "subject": m.subject,
                    "content_type": m.content_type,
                    "body": m.body,
                    "save_to_sent_items": m.save_to_sent_items,
                    "attachments": m.attachment_names,
                    "extended_properties": m.extended_properties,
                }
                for m in state.outbox
            ]
        )

    async def faults(request: Request) -> JSONResponse:
        if request.method == "PUT":
            try:
                update = await _json(request)
                if not isinstance(update, dict):
                    return _error(422, "The body must be a JSON object of SimLimits fields.")
                limits = SimLimits.model_validate({**ctx.limits.model_dump(), **update})
            except (ValidationError, json.JSONDecodeError) as exc:
                detail = exc.errors() if isinstance(exc, ValidationError) else str(exc)
                return JSONResponse({"detail": json.loads(json.dumps(detail, default=str))}, 422)
            ctx.set_limits(limits)
        return JSONResponse(ctx.limits.model_dump())

    async def request_stats(_: Request) -> JSONResponse:
        by_route = [
            {"method": method, "route": route, "status": status, "count": count}
            for (method, route, status), count in sorted(ctx.stats.items())
        ]
        return JSONResponse(
            {
                "total": sum(ctx.stats.values()),
                "throttled": ctx.throttled,
                "faulted": ctx.faulted,
                "lost": ctx.lost,
                "by_route": by_route,
            }
        )

    async def request_log(request: Request) -> JSONResponse:
        """The latest Graph requests in order (DELETE empties the log)."""
        if request.method == "DELETE":
            ctx.request_log.clear()
            return JSONResponse({"requests": []})
        return JSONResponse(
            {
                "requests": [
                    {"method": method, "url": url, "status": status, "at": at}
                    for method, url, status, at in ctx.request_log
                ]
            }
        )

    async def approvals(request: Request) -> JSONResponse:
        try:
            decision = Decision.model_validate(await _json(request))
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(422, str(exc))
        now_advanced()
        try:
            decided = ctx.engine.decide(
                request.path_params["request_id"],
                approve=decision.decision == "approve",
                approver_id=decision.approver_id,
                now=ctx.clock.now(),
            )
        except GraphError as error:
            return _error(error.status, error.message, error.code)
        return JSONResponse(serialize.schedule_request(decided))

    async def drift(request: Request) -> JSONResponse:
        try:
            body = DriftAssignment.model_validate(await _json(request))
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(422, str(exc))
        now_advanced()
        principal_id, role_id = body.principal_id.lower(), body.role_definition_id.lower()
        principal = state.principal(principal_id)
        if principal is None or role_id not in state.roles:
            return _error(404, "Unknown principal or role definition.")
        if isinstance(principal, Group) and not principal.is_assignable_to_role:
            return _error(400, "Only role-assignable groups can hold directory roles.")
        if state.actives.find(principal_id, role_id, body.directory_scope_id):
            return _error(
                409, "The principal already holds this role actively.", "RoleAssignmentExists"
            )
        schedule = inject_outside_pim(
            state, principal_id, role_id, at=ctx.clock.now(), actor_id=body.actor_id
        )
        return JSONResponse(_schedule_json(state, schedule), status_code=201)

    async def clock(request: Request) -> JSONResponse:
        if not isinstance(ctx.clock, FakeClock):
            return _error(
                409, "The simulator runs on real time; start it with a FakeClock to step it."
            )
        try:
            step = ClockStep.model_validate(await _json(request))
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(422, str(exc))
        ctx.clock.advance(step.seconds)
        now_advanced()
        return JSONResponse({"now": format_datetime(ctx.clock.now())})

    async def activity(request: Request) -> JSONResponse:
        try:
            options = ActivityRequest.model_validate(await _json(request))
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(422, str(exc))
        now = ctx.clock.now()
        lifecycle.advance(state, now)
        try:
            summary = ActivityGenerator(state, ctx.engine, now).run(options)
        except GraphError as error:
            return _error(error.status, error.message, error.code)
        return JSONResponse(summary)

    async def permissions(request: Request) -> JSONResponse:
        if request.method == "PUT":
            try:
                body = Permissions.model_validate(await _json(request))
            except (ValidationError, json.JSONDecodeError) as exc:
                return _error(422, str(exc))
            state.granted_permissions = set(body.granted)
        return JSONResponse({"granted": sorted(state.granted_permissions)})

    async def licensing(request: Request) -> JSONResponse:
        try:
            body = Licensing.model_validate(await _json(request))
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(422, str(exc))
        state.p2 = body.p2
        state.rebuild_skus()
        return JSONResponse({"p2": state.p2})

    return [
        Route("/_sim/profile", profile, methods=["GET"]),
        Route("/_sim/state", get_state, methods=["GET"]),
        Route("/_sim/timeline", timeline, methods=["GET"]),
        Route("/_sim/outbox", outbox, methods=["GET"]),
        Route("/_sim/faults", faults, methods=["GET", "PUT"]),
        Route("/_sim/requests", request_stats, methods=["GET"]),
        Route("/_sim/request-log", request_log, methods=["GET", "DELETE"]),
        Route("/_sim/approvals/{request_id}", approvals, methods=["POST"]),
        Route("/_sim/assignments", drift, methods=["POST"]),
        Route("/_sim/clock", clock, methods=["POST"]),
        Route("/_sim/activity", activity, methods=["POST"]),
        Route("/_sim/permissions", permissions, methods=["GET", "PUT"]),
        Route("/_sim/licensing", licensing, methods=["PUT"]),
    ]
