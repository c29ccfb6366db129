"""Admins who sign in with a personal Microsoft account stay permanent Active: MFA on activation
would lock them out (domain facts). Other guests are converted like everyone else."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlmodel import select

from app.db.models import WorkItem
from app.domain.cohort import MICROSOFT_ACCOUNT_REASON, Holding
from app.domain.roles import GLOBAL_ADMINISTRATOR
from app.engine.actions import start
from app.engine.live import microsoft_account_users
from app.graph.client import GraphClient
from app.graph.errors import GraphError, GraphForbiddenError, GraphNotFoundError
from app.graph.models import User
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


class _DirectoryAnswers:
    """Stands in for the Graph client's batched user lookup."""

    def __init__(self, answers: dict[str, User | GraphError]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def get_users(
        self, ids: list[str], *, select: tuple[str, ...] | None = None
    ) -> dict[str, User | GraphError]:
        assert select is not None
        assert "identities" in select
        self.asked += ids
        return {i: self.answers[i] for i in ids}


def _holding(principal_id: str, upn: str) -> Holding:
    return Holding(principal_id, "user", GLOBAL_ADMINISTRATOR, "/", f"a-{principal_id}", None, upn)


async def test_only_external_users_are_looked_up_and_a_vanished_one_is_no_consumer() -> None:
    directory = _DirectoryAnswers(
        {
            "guest": User.model_validate(
                {"id": "guest", "userType": "Guest", "identities": MICROSOFT_ACCOUNT}
            ),
            "gone": GraphNotFoundError("Resource 'gone' does not exist", status=404),
        }
    )
    holdings = [
        _holding("guest", "g_outlook.com#EXT#@contoso.onmicrosoft.com"),
        _holding("gone", "x_live.com#EXT#@contoso.onmicrosoft.com"),
        _holding("member", "member@contoso.com"),
    ]
    found = await microsoft_account_users(cast(GraphClient, directory), holdings)
    assert found == {"guest"}
    assert sorted(directory.asked) == ["gone", "guest"]


async def test_an_unreadable_user_stops_the_cohort_read() -> None:
    """Not knowing whether an admin can do MFA must not end in converting them anyway."""
    denied = GraphForbiddenError("Insufficient privileges", status=403)
    directory = _DirectoryAnswers({"guest": denied})
    with pytest.raises(GraphForbiddenError):
        await microsoft_account_users(
            cast(GraphClient, directory),
            [_holding("guest", "g_outlook.com#EXT#@contoso.onmicrosoft.com")],
        )
