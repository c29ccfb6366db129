"""Per-person comms: each recipient's mail lists only the roles they held and now activate,
with the settings in effect for the phase; the public page stays the overview of every role.

Recipients are worked out from the live tenant before a phase runs and read from its
conversions after; both must agree with the mail the phase actually sends.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.validation import parse_plan
from tests.engine.conftest import Clients, Rig
from tests.engine.test_comms import (
    TARGET_NAMES,
    drive,
    mails_by_phase,
    role_rows,
    text_role_lines,
)
from tests.factories import GA, plan_data

PILOT = "multi-factor sign-in, a one-line reason"
# Roles whose activation needs approval once the default plan's approval rules are in force.
APPROVED = {
    "Global Administrator",
    "Privileged Authentication Administrator",
    "Privileged Role Administrator",
}
PREVIEW = "/api/v1/plans/{plan}/phases/{phase}/comms/preview"
RECIPIENTS = "/api/v1/plans/{plan}/phases/{phase}/comms/recipients"


@pytest.fixture
def sim_size() -> tuple[int, int]:
    # Seed 11 at this size: pilot members with one and with two target roles, and Global
    # Administrators among the remaining admins.
    return (120, 20)


async def new_plan(clients: Clients, rig: Rig, **body: Any) -> str:
    created = await clients.api.post(
        "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default", **body}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def recipients(clients: Clients, plan_id: str, phase: str) -> list[dict[str, Any]]:
    response = await clients.api.get(RECIPIENTS.format(plan=plan_id, phase=phase))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def preview_for(
    clients: Clients, plan_id: str, phase: str, recipient: str | None
) -> dict[str, Any]:
    params = {"recipient": recipient} if recipient is not None else {}
    response = await clients.api.get(PREVIEW.format(plan=plan_id, phase=phase), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def role_names(person: dict[str, Any]) -> list[str]:
    return [role["name"] for role in person["roles"]]


def approval_in_all_admins() -> dict[str, Any]:
    """The default plan with its approval rules in force from the all-admins phase on."""
    data = plan_data()
    phases = {p["key"]: p for p in data["phases"]}
    approval_step = phases.pop("ga-approval")["steps"][0]
    phases["all-admins"]["steps"].insert(0, approval_step)
    data["phases"] = list(phases.values())
    parse_plan(data)
    return data


class TestPersonalMail:
    async def test_a_recipient_with_one_role_gets_a_one_role_mail(
        self, rig: Rig, clients: Clients
    ) -> None:
        plan_id = await new_plan(clients, rig)
        pilot = await recipients(clients, plan_id, "pilot")
        by_count = {len(p["roles"]): p for p in pilot}
        assert {1, 2} <= set(by_count), pilot

        one = by_count[1]
        # By user principal name, whatever its case, as well as by object id.
        for wanted in (one["id"], one["upn"].upper()):
            body = await preview_for(clients, plan_id, "pilot", wanted)
            assert body["recipient"] == one
            (role,) = role_names(one)
            assert role_rows(body["html"]) == {role: ("4 hours", PILOT)}
            assert text_role_lines(body["text"]) == {
                role: "up to 4 hours; multi-factor sign-in; a one-line reason"
            }
            assert f"Hi {one['name']}," in body["text"]
            assert "you no longer hold the roles below" in body["text"]
            assert "approver" not in body["text"]

        two = by_count[2]
        body = await preview_for(clients, plan_id, "pilot", two["id"])
        assert role_rows(body["html"]) == dict.fromkeys(role_names(two), ("4 hours", PILOT))

    async def test_global_administrator_is_told_who_approves(
        self, rig: Rig, clients: Clients
    ) -> None:
        plan_id = await new_plan(clients, rig, template=None, spec=approval_in_all_admins())
        everyone = await recipients(clients, plan_id, "all-admins")
        holders = [p for p in everyone if GA in {r["id"] for r in p["roles"]}]
        assert holders, everyone

        for person in holders:
            body = await preview_for(clients, plan_id, "all-admins", person["id"])
            rows = role_rows(body["html"])
            assert set(rows) == set(role_names(person))
            assert rows["Global Administrator"] == (
                "8 hours",
                f"{PILOT}, approval by the security team",
            )
            lines = text_role_lines(body["text"])
            assert lines["Global Administrator"].endswith("; approval by the security team")
            assert "wait for an approver to say yes" in body["text"]

        plain = next(p for p in everyone if not APPROVED & set(role_names(p)))
        body = await preview_for(clients, plan_id, "all-admins", plain["id"])
        assert set(role_rows(body["html"]).values()) == {("8 hours", PILOT)}
        assert "approver" not in body["text"]

    async def test_the_overview_page_still_lists_every_role(
        self, rig: Rig, clients: Clients
    ) -> None:
        plan_id = await new_plan(clients, rig)
        for phase, duration in {"pilot": "4 hours", "all-admins": "8 hours"}.items():
            body = await preview_for(clients, plan_id, phase, None)
            assert body["recipient"] is None
            assert role_rows(body["html"]) == dict.fromkeys(TARGET_NAMES, (duration, PILOT))
            assert "Your own mail lists the roles you hold" in body["text"]
            page = await clients.anon.get(f"/comms/{plan_id}/{phase}")
            assert page.status_code == 200
            assert page.text == body["html"]

    async def test_someone_the_phase_does_not_mail_is_a_404_naming_them(
        self, rig: Rig, clients: Clients
    ) -> None:
        plan_id = await new_plan(clients, rig)
        profile = await rig.sim("GET", "/_sim/profile")
        pilot_member = (await recipients(clients, plan_id, "pilot"))[0]
        cases = [
            ("pilot", profile["break_glass_ids"][0]),
            ("all-admins", pilot_member["upn"]),
            ("pilot", "nobody@contoso.test"),
        ]
        for phase, wanted in cases:
            response = await clients.api.get(
                PREVIEW.format(plan=plan_id, phase=phase), params={"recipient": wanted}
            )
            assert response.status_code == 404, (phase, wanted, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert wanted in problem["detail"]
            assert phase in problem["detail"]
            assert problem["recipient"] == wanted

        no_comms = await clients.api.get(
            PREVIEW.format(plan=plan_id, phase="feedback"), params={"recipient": "x"}
        )
        assert no_comms.status_code == 404
        assert "sends no comms" in no_comms.json()["detail"]


class TestRecipientsAgreeWithTheMail:
    async def test_predicted_recipients_are_the_ones_mailed_with_their_roles(
        self, rig: Rig, clients: Clients
    ) -> None:
        plan_id = await new_plan(clients, rig)
        predicted = {
            phase: await recipients(clients, plan_id, phase) for phase in ("pilot", "all-admins")
        }
        await start_plan_from(clients, plan_id)
        plan = await drive(rig, clients, plan_id, {"completed", "failed"})
        assert plan["state"] == "completed", plan

        outbox = await rig.sim("GET", "/_sim/outbox")
        mailed = mails_by_phase(outbox, plan_id)
        by_key = {next(iter(m["extended_properties"].values())): m for m in outbox}
        for phase, people in predicted.items():
            assert len(people) >= 3, (phase, people)
            # After the run the recipients come from the phase's conversions: the same.
            assert await recipients(clients, plan_id, phase) == people
            assert {u for p, u in mailed if p == phase} == {p["id"] for p in people}
            for person in people:
                mail = by_key[f"{plan_id}:{phase}:send_mail:{person['id']}"]
                rows = role_rows(mail["body"])
                assert list(rows) == role_names(person)
                body = await preview_for(clients, plan_id, phase, person["id"])
                assert role_rows(body["html"]) == rows


async def start_plan_from(clients: Clients, plan_id: str) -> None:
    started = await clients.api.post(f"/api/v1/plans/{plan_id}/start")
    assert started.status_code == 200, started.text
