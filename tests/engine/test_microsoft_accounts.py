"""Admins who sign in with a personal Microsoft account stay permanent Active: MFA on activation
would lock them out (domain facts). Other guests are converted like everyone else."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from app.db.models import WorkItem
from app.domain.cohort import MICROSOFT_ACCOUNT_REASON
from app.domain.roles import GLOBAL_ADMINISTRATOR
from app.engine.actions import start
from tests.engine.conftest import TERMINAL, Rig
from tests.engine.helpers import eligible, permanent_active
from tests.factories import plan_data

MICROSOFT_ACCOUNT = [
    {"signInType": "federated", "issuer": "MicrosoftAccount", "issuerAssignedId": None}
]


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (120, 16)


def _ga_only_plan() -> dict[str, Any]:
    data = plan_data("default")
    data["roles"] = [r for r in data["roles"] if r["id"] == GLOBAL_ADMINISTRATOR]
    data["phases"] = [
        {
            "key": "all",
            "title": "Every Global Administrator",
            "starts_after": "P0D",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        }
    ]
    return data


async def test_personal_microsoft_account_keeps_standing_access(rig: Rig) -> None:
    consumer, business = [u for u in rig.sim_state.users.values() if u.user_type == "Guest"][:2]
    consumer.identities = list(MICROSOFT_ACCOUNT)
    for guest in (consumer, business):
        await rig.sim(
            "POST",
            "/_sim/assignments",
            json={"principal_id": guest.id, "role_definition_id": GLOBAL_ADMINISTRATOR},
        )
    plan_id = rig.create_plan(spec=_ga_only_plan())
    await start(rig.ectx, plan_id=plan_id, actor="tester", reason=None, expected_version=None)
    view = await rig.run_until(plan_id, TERMINAL)
    assert view.row.state == "completed", view.row.status_reason

    state = await rig.sim("GET", "/_sim/state")
    consumer_key = (consumer.id, GLOBAL_ADMINISTRATOR, "/")
    business_key = (business.id, GLOBAL_ADMINISTRATOR, "/")
    assert consumer_key in permanent_active(state)
    assert consumer_key not in eligible(state)
    assert business_key in eligible(state)
    assert business_key not in permanent_active(state)
    with rig.session_factory() as session:
        items = {
            item.principal_id: item
            for item in session.exec(select(WorkItem).where(WorkItem.plan_id == plan_id))
        }
    assert items[consumer.id].state == "skipped"
    assert items[consumer.id].last_error == MICROSOFT_ACCOUNT_REASON
    assert items[business.id].state == "done"
