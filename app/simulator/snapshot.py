"""The whole simulated tenant as plain data (for JSON/YAML files) and back, ids preserved."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

from app.simulator import catalog
from app.simulator.ids import IdFactory
from app.simulator.state import (
    AuditRecord,
    Group,
    OutboxMessage,
    PendingEvent,
    Policy,
    Profile,
    ReviewDefinition,
    Schedule,
    ScheduleRequest,
    ServicePrincipal,
    SimState,
    Sku,
    TimelineEntry,
    User,
)

FORMAT = "pim-rollout.simulated-tenant/v1"
D = TypeVar("D")
SKU_TEMPLATES = {
    t.part_number: t for t in (catalog.SKU_ENTRA_P2, catalog.SKU_ENTRA_P1, catalog.SKU_OFFICE_E3)
}


def _is_datetime_field(field: dataclasses.Field[Any]) -> bool:
    # Annotations are strings under ``from __future__ import annotations``.
    return "datetime" in str(field.type)


def _dump(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            continue  # nested dataclasses (Sku.template) are written by their owner
        result[field.name] = value
    return result


def _load(cls: type[D], data: dict[str, Any]) -> D:
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in data:
            continue
        value = data[field.name]
        if _is_datetime_field(field) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def state_to_dict(state: SimState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "tenant": {
            "tenant_id": state.tenant_id,
            "tenant_name": state.tenant_name,
            "domain": state.domain,
            "created_at": state.created_at.isoformat(),
            "seed": state.seed,
            "p2": state.p2,
            "last_seq": state.last_seq,
            "caller_app_id": state.caller_app_id,
            "caller_app_name": state.caller_app_name,
            "caller_service_principal_id": state.caller_service_principal_id,
            "granted_permissions": sorted(state.granted_permissions),
        },
        "profile": dataclasses.asdict(state.profile),
        "users": [_dump(u) for u in state.users.values()],
        "groups": [_dump(g) for g in state.groups.values()],
        "service_principals": [_dump(sp) for sp in state.service_principals.values()],
        "active_schedules": [_dump(s) for s in state.actives],
        "eligible_schedules": [_dump(s) for s in state.eligibles],
        "requests": [_dump(r) for r in state.requests.values()],
        "policies": [_dump(p) for p in state.policies.values()],
        "reviews": [_dump(r) for r in state.reviews.values()],
        "skus": [{**_dump(s), "part_number": s.template.part_number} for s in state.skus],
        "outbox": [_dump(m) for m in state.outbox],
        "audits": [_dump(a) for a in state.audits],
        "timeline": [_dump(t) for t in state.timeline],
        "pending": [_dump(e) for e in state.pending],
    }


def state_from_dict(data: dict[str, Any]) -> SimState:
    if data.get("format") != FORMAT:
        raise ValueError(f"not a simulated tenant file (format must be {FORMAT!r})")
    meta = data["tenant"]
    state = SimState(
        tenant_id=meta["tenant_id"],
        tenant_name=meta["tenant_name"],
        domain=meta["domain"],
        created_at=datetime.fromisoformat(meta["created_at"]),
        seed=int(meta["seed"]),
        p2=bool(meta["p2"]),
        with_defaults=False,
    )
    # A fresh id stream: the saved one already produced the ids in this file.
    state.ids = IdFactory(f"{meta['seed']}:{meta['tenant_id']}:{meta['last_seq']}:reloaded")
    state.restore_seq(int(meta["last_seq"]))
    state.caller_app_id = meta["caller_app_id"]
    state.caller_app_name = meta["caller_app_name"]
    state.caller_service_principal_id = meta["caller_service_principal_id"]
    state.granted_permissions = set(meta["granted_permissions"])
    state.profile = Profile(**data.get("profile", {}))
    for raw in data.get("users", []):
        state.add_user(_load(User, raw))
    for raw in data.get("groups", []):
        state.add_group(_load(Group, raw))
    for raw in data.get("service_principals", []):
        state.add_service_principal(_load(ServicePrincipal, raw))
    for raw in data.get("active_schedules", []) + data.get("eligible_schedules", []):
        state.add_schedule(_load(Schedule, raw))
    for raw in data.get("requests", []):
        state.add_request(_load(ScheduleRequest, raw))
    for raw in data.get("policies", []):
        state.add_policy(_load(Policy, raw))
    for raw in data.get("reviews", []):
        review = _load(ReviewDefinition, raw)
        state.reviews[review.id] = review
    state.skus = [
        Sku(
            template=SKU_TEMPLATES[raw["part_number"]],
            enabled_units=raw["enabled_units"],
            consumed_units=raw["consumed_units"],
            account_id=raw["account_id"],
            subscription_id=raw["subscription_id"],
            capability_status=raw.get("capability_status", "Enabled"),
        )
        for raw in data.get("skus", [])
    ]
    state.outbox = [_load(OutboxMessage, raw) for raw in data.get("outbox", [])]
    for raw in data.get("audits", []):
        state.add_audit(_load(AuditRecord, raw))
    state.timeline = [_load(TimelineEntry, raw) for raw in data.get("timeline", [])]
    for raw in data.get("pending", []):
        state.queue(_load(PendingEvent, raw))
    return state
