"""Building blocks shared by the tenant generator and the inventory importer."""

from __future__ import annotations

from datetime import UTC, datetime

from app.simulator import lifecycle
from app.simulator.ids import role_assignment_id
from app.simulator.state import Schedule, SimState

# Seeded tenants are dated before any clock a test or demo uses, so nothing in them is "recent".
DEFAULT_ANCHOR = datetime(2024, 6, 1, tzinfo=UTC)


def new_state(
    *, tenant_id: str, tenant_name: str, domain: str, created_at: datetime, seed: int, p2: bool
) -> SimState:
    """An empty tenant with its calling app, one policy per built-in role, and its licences."""
    return SimState(
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        domain=domain,
        created_at=created_at,
        seed=seed,
        p2=p2,
    )


def add_outside_pim_assignment(
    state: SimState,
    principal_id: str,
    role_id: str,
    *,
    at: datetime,
    scope: str = "/",
    cause: str = "seed",
) -> Schedule:
    """A permanent Active assignment made outside PIM, shaped as reference §4.2 describes."""
    schedule = Schedule(
        id=role_assignment_id(role_id, principal_id),
        kind="active",
        principal_id=principal_id,
        role_definition_id=role_id,
        directory_scope_id=scope,
        assigned_at=at,
        last_change_at=at,
    )
    lifecycle.store_schedule(state, schedule, now=at, cause=cause)
    return schedule
