"""``/auditLogs/directoryAudits`` (reference §11.1): filters, $top, $orderby, paging."""

from __future__ import annotations

from app.simulator import errors, odata, permissions
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.routes import common
from app.simulator.state import AuditRecord

AUDITS = "auditLogs/directoryAudits"
TYPE_NAME = "microsoft.graph.directoryAudit"
AUDIT_PROPERTIES = (
    "id",
    "category",
    "correlationId",
    "result",
    "resultReason",
    "activityDisplayName",
    "activityDateTime",
    "loggedByService",
    "operationType",
    "initiatedBy",
    "targetResources",
    "additionalDetails",
)
# Documented filters (directoryaudit-list.md @ 05296ab3) plus ``category``, which the docs omit
# but third parties use successfully (reference §11.1 [obs]).
AUDIT_FILTER = odata.spec(
    {
        "activityDateTime": ("eq", "ge", "le", "gt", "lt"),
        "activityDisplayName": ("eq", "startswith"),
        "category": ("eq",),
        "loggedByService": ("eq",),
        "correlationId": ("eq",),
        "id": ("eq",),
        "result": ("eq",),
        "initiatedBy/user/id": ("eq",),
        "initiatedBy/user/displayName": ("eq",),
        "initiatedBy/user/userPrincipalName": ("eq", "startswith"),
        "initiatedBy/app/appId": ("eq",),
        "initiatedBy/app/displayName": ("eq",),
        "targetResources": ("any",),
        "targetResources/id": ("eq",),
        "targetResources/displayName": ("eq", "startswith"),
    }
)


def _order(request: GraphRequest) -> bool:
    """True for newest first (the default), False for oldest first."""
    raw = request.params.get("$orderby")
    if raw is None:
        return True
    parts = raw.split()
    if not parts or parts[0].lower() != "activitydatetime" or len(parts) > 2:
        raise errors.bad_request("$orderby is only supported on activityDateTime (asc or desc).")
    if len(parts) == 2 and parts[1].lower() not in {"asc", "desc"}:
        raise errors.bad_request("$orderby direction must be asc or desc.")
    return len(parts) == 2 and parts[1].lower() == "desc"


def _key(record: AuditRecord, newest_first: bool) -> list[float]:
    stamp = record.at.timestamp()
    return [-stamp, -record.seq] if newest_first else [stamp, record.seq]


def list_audits(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    query = common.list_query(
        request,
        filter_spec=AUDIT_FILTER,
        selectable=AUDIT_PROPERTIES,
        type_name=TYPE_NAME,
    )
    newest_first = _order(request)
    records = [
        r for r in ctx.state.audits if query.node is None or odata.evaluate(query.node, r.body)
    ]
    records.sort(key=lambda r: _key(r, newest_first))
    return common.collection(
        ctx,
        request,
        records,
        key=lambda r: _key(r, newest_first),
        render=lambda r: dict(r.body),
        query=query,
        fragment=AUDITS,
        selectable=AUDIT_PROPERTIES,
        type_name=TYPE_NAME,
    )


def get_audit(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    record = ctx.state.audits_by_id.get(params["id"])
    if record is None:
        raise errors.not_found(f"The audit record '{params['id']}' does not exist.")
    item = odata.apply_select(
        dict(record.body),
        odata.parse_select(request.params.get("$select")),
        AUDIT_PROPERTIES,
        TYPE_NAME,
    )
    return common.entity(request, f"{AUDITS}/$entity", item)


def register(router: Router) -> None:
    needs = permissions.DIRECTORY_AUDITS_ALL_OF
    router.add("GET", AUDITS, list_audits, all_of=needs)
    router.add("GET", f"{AUDITS}/{{id}}", get_audit, all_of=needs)
