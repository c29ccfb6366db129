"""A tenant rebuilt from an inventory snapshot of a real one, for rehearsing a plan.

Snapshot format (produced by the product): ``{"format": "pim-rollout.inventory/v1", "tenant_id",
"taken_at", "items": [{"role_definition_id", "role_display_name", "principal_id",
"principal_type", "principal_display_name", "principal_user_principal_name",
"directory_scope_id", "assignment_id", "created_outside_pim"}], "groups": [{"id",
"display_name", "member_ids"}], "break_glass_ids": [...]}``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from app.simulator import lifecycle
from app.simulator.builders import (
    DEFAULT_ANCHOR,
    add_outside_pim_assignment,
    new_state,
)
from app.simulator.state import Group, Schedule, ServicePrincipal, SimState, User

INVENTORY_FORMAT = "pim-rollout.inventory/v1"


def tenant_from_inventory(snapshot: dict[str, Any]) -> SimState:
    """A tenant holding exactly the snapshot's assignments, each a permanent Active one; P2 on."""
    if snapshot.get("format") != INVENTORY_FORMAT:
        raise ValueError(f"inventory format must be {INVENTORY_FORMAT!r}")
    tenant_id = str(snapshot["tenant_id"]).lower()
    items = snapshot.get("items") or []
    domains = Counter(
        str(i["principal_user_principal_name"]).split("@")[-1].lower()
        for i in items
        if i.get("principal_user_principal_name")
        and "#EXT#" not in str(i["principal_user_principal_name"])
    )
    domain = domains.most_common(1)[0][0] if domains else "contoso.com"
    taken_at = snapshot.get("taken_at")
    created = (
        datetime.fromisoformat(str(taken_at).replace("Z", "+00:00")) if taken_at else DEFAULT_ANCHOR
    )
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    assigned_at = min(created, DEFAULT_ANCHOR) - timedelta(days=30)
    state = new_state(
        tenant_id=tenant_id,
        tenant_name=f"Rehearsal of {tenant_id}",
        domain=domain,
        created_at=assigned_at,
        seed=int(uuid.UUID(tenant_id)) % 2**31,
        p2=True,
    )

    def ensure_user(user_id: str, name: str | None = None, upn: str | None = None) -> None:
        if state.principal(user_id) is None:
            upn = upn or f"user-{user_id[:8]}@{domain}"
            guest = "#EXT#" in upn
            state.add_user(
                User(
                    id=user_id,
                    display_name=name or upn.split("@")[0],
                    user_principal_name=upn,
                    mail=None if guest else upn,
                    user_type="Guest" if guest else "Member",
                    has_mailbox=not guest,
                )
            )

    for group in snapshot.get("groups") or []:
        state.add_group(
            Group(
                id=str(group["id"]).lower(),
                display_name=str(group.get("display_name") or group["id"]),
                is_assignable_to_role=True,
                mail_nickname=str(group.get("display_name") or "group").lower().replace(" ", "-"),
                member_ids=[str(m).lower() for m in group.get("member_ids") or []],
            )
        )
    for item in items:
        principal_id = str(item["principal_id"]).lower()
        kind = item.get("principal_type", "user")
        name = item.get("principal_display_name")
        if kind == "group" and principal_id not in state.groups:
            state.add_group(
                Group(
                    id=principal_id, display_name=name or principal_id, is_assignable_to_role=True
                )
            )
        elif kind == "servicePrincipal" and principal_id not in state.service_principals:
            state.add_service_principal(
                ServicePrincipal(
                    id=principal_id, app_id=state.ids.guid(), display_name=name or principal_id
                )
            )
        elif kind == "user":
            ensure_user(principal_id, name, item.get("principal_user_principal_name"))
    for group in list(state.groups.values()):
        for member_id in group.member_ids:
            if state.principal(member_id) is None:
                ensure_user(member_id)
    for item in items:
        role_id = str(item["role_definition_id"]).lower()
        if role_id not in state.roles:
            raise ValueError(f"inventory item names unknown role {role_id}")
        principal_id = str(item["principal_id"]).lower()
        scope = str(item.get("directory_scope_id") or "/")
        if state.actives.find(principal_id, role_id, scope) is not None:
            continue
        if item.get("created_outside_pim", True):
            add_outside_pim_assignment(state, principal_id, role_id, at=assigned_at, scope=scope)
            continue
        request_id = str(item.get("assignment_id") or state.ids.guid())
        schedule = Schedule(
            id=request_id if len(request_id) == 36 else state.ids.guid(),
            kind="active",
            principal_id=principal_id,
            role_definition_id=role_id,
            directory_scope_id=scope,
            assigned_at=assigned_at,
            last_change_at=assigned_at,
            start=assigned_at,
            created_using=request_id if len(request_id) == 36 else state.ids.guid(),
            created_at=assigned_at,
        )
        lifecycle.store_schedule(state, schedule, now=assigned_at, cause="seed")
    sender_id = state.ids.guid()
    state.add_user(
        User(
            id=sender_id,
            display_name="PIM Rollout Notifications",
            user_principal_name=f"pim-rollout@{domain}",
            mail=f"pim-rollout@{domain}",
        )
    )
    state.profile.break_glass_ids = [str(i).lower() for i in snapshot.get("break_glass_ids") or []]
    state.profile.comms = {"sender": sender_id}
    state.rebuild_skus()
    return state
