"""The comms mail: renders for every comms phase, escapes, refuses missing values, goes out
exactly once per person and phase (crash and retry included), and can be previewed first."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlmodel import select

from app.db.models import JournalEntry, Tenant
from app.db.session import unit_of_work
from app.domain.plan import PlanSpec, SendCommsStep
from app.domain.tenant import CommsSettings, HelpdeskContact
from app.domain.validation import parse_plan
from app.engine.journal import record_outcome
from app.engine.tick import tick
from app.services.comms import CommsRenderer, CommsRenderError, comms_context
from app.services.templates import read_plan_file
from tests.engine.conftest import Clients, Rig
from tests.factories import GA, PLANS_DIR, PRA, plan_data

TARGET_NAMES = [r["name"] for r in plan_data()["roles"]]
TARGET_IDS = {r["id"] for r in plan_data()["roles"]}
# Longest activation each comms phase announces: the pilot sets 4h, the feedback phase 8h.
COMMS_PHASES = {"pilot": "4 hours", "all-admins": "8 hours"}
WHEN = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
WHEN_TEXT = "Monday 09 March 2026, 14:30 UTC"
PAGE_URL = "https://pim.contoso.test/comms/plan-1/pilot"
ACTIVATION_URL = "https://portal.contoso.test/pim/my-roles"
HELPDESK_VALUES = {
    "name": "Contoso Service Desk",
    "email": "desk@contoso.test",
    "phone": "+1 555 0199",
    "url": "https://help.contoso.test/pim",
}
HELPDESK = HelpdeskContact(**HELPDESK_VALUES)
# The step's own reference to the journal's outcome writer: where a crash is injected.
RECORD_OUTCOME = "app.engine.steps.comms.record_outcome"
COMMS = CommsSettings(sender="pim@contoso.test", helpdesk=HELPDESK, activation_url=ACTIVATION_URL)
SCRIPT = "<script>alert(1)</script>"
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def template_names() -> list[str]:
    shipped = CommsRenderer().env.list_templates()
    comms = [name.removeprefix("comms/") for name in shipped if name.startswith("comms/")]
    html = {name.removesuffix(".html.j2") for name in comms if name.endswith(".html.j2")}
    text = {name.removesuffix(".txt.j2") for name in comms if name.endswith(".txt.j2")}
    assert html == text, "every comms template needs both an HTML and a plain-text version"
    assert html, "no comms templates found"
    return sorted(html)


class _TableRows(HTMLParser):
    """The cells of each body row of the comms page's role table, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def role_rows(html: str) -> dict[str, tuple[str, str]]:
    parser = _TableRows()
    parser.feed(html)
    return {row[0]: (row[1], row[2]) for row in parser.rows}


def text_role_lines(text: str) -> dict[str, str]:
    lines = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    return dict(line.split(": ", 1) for line in lines)


def context_for(spec: PlanSpec, phase_key: str, comms: CommsSettings = COMMS) -> dict[str, Any]:
    return comms_context(
        spec=spec,
        phase_key=phase_key,
        comms=comms,
        tenant_name="Contoso Ltd",
        recipient_name="Ada Admin",
        roles=[],
        effective_from=WHEN,
        page_url=PAGE_URL,
    )


def comms_phases(spec: PlanSpec) -> list[tuple[str, SendCommsStep]]:
    return [
        (phase.key, step)
        for phase in spec.phases
        for step in phase.steps
        if isinstance(step, SendCommsStep)
    ]


class TestRender:
    @pytest.mark.parametrize("plan", ["default", "demo"])
    @pytest.mark.parametrize("template", template_names())
    def test_every_template_renders_for_every_comms_phase(self, plan: str, template: str) -> None:
        spec = read_plan_file(PLANS_DIR / f"{plan}.yaml")
        phases = comms_phases(spec)
        assert {key for key, _ in phases} == set(COMMS_PHASES)
        for phase_key, step in phases:
            phase = spec.phase(phase_key)
            assert phase is not None
            rendered = CommsRenderer().render(template, step.subject, context_for(spec, phase_key))
            assert rendered.subject == "Your admin roles are becoming just-in-time"
            duration = COMMS_PHASES[phase_key]
            for body in (rendered.html, rendered.text):
                for value in (
                    "Contoso Ltd",
                    "Ada Admin",
                    phase.title,
                    WHEN_TEXT,
                    *HELPDESK_VALUES.values(),
                    ACTIVATION_URL,
                    PAGE_URL,
                ):
                    assert value in body, (phase_key, value)
            # Before the approval phase nobody needs an approver, and no ticket is asked for.
            expected = "multi-factor sign-in, a one-line reason"
            assert role_rows(rendered.html) == dict.fromkeys(TARGET_NAMES, (duration, expected))
            assert text_role_lines(rendered.text) == dict.fromkeys(
                TARGET_NAMES, f"up to {duration}; multi-factor sign-in; a one-line reason"
            )
            assert "approver" not in rendered.text
            assert "ticket" not in rendered.text

    def test_approval_and_ticket_appear_where_they_apply(self) -> None:
        data = plan_data()
        phases = {p["key"]: p for p in data["phases"]}
        phases["feedback"]["steps"][0]["settings"]["require_ticket"] = True
        # Approval moved ahead of the last conversion, so that phase's comms must announce it.
        approval_step = phases.pop("ga-approval")["steps"][0]
        phases["all-admins"]["steps"].insert(0, approval_step)
        data["phases"] = list(phases.values())
        spec = parse_plan(data)
        renderer = CommsRenderer()

        pilot = renderer.render("default", "s", context_for(spec, "pilot"))
        assert "ticket" not in pilot.text
        assert "approver" not in pilot.text

        approval = renderer.render("default", "s", context_for(spec, "all-admins"))
        rows = role_rows(approval.html)
        assert set(rows) == set(TARGET_NAMES)
        base = "multi-factor sign-in, a one-line reason, a ticket number"
        # Who approves comes from the rule's bindings: security team for GA, managers for two.
        approvers = {
            "Global Administrator": "the security team",
            "Privileged Authentication Administrator": "the managers",
            "Privileged Role Administrator": "the managers",
        }
        assert rows == {
            name: (
                "8 hours",
                f"{base}, approval by {approvers[name]}" if name in approvers else base,
            )
            for name in TARGET_NAMES
        }
        lines = text_role_lines(approval.text)
        assert lines["Global Administrator"] == (
            "up to 8 hours; multi-factor sign-in; a one-line reason; a ticket number; "
            "approval by the security team"
        )
        assert lines["User Administrator"] == (
            "up to 8 hours; multi-factor sign-in; a one-line reason; a ticket number"
        )
        assert "and your ticket number" in approval.text
        for body in (approval.html, approval.text):
            assert "wait for an approver to say yes" in body

    def test_html_escapes_tenant_values_and_text_keeps_them_verbatim(self) -> None:
        spec = read_plan_file(PLANS_DIR / "default.yaml")
        comms = CommsSettings(
            sender="pim@contoso.test",
            helpdesk=HelpdeskContact(name=SCRIPT, email="desk@contoso.test"),
        )
        context = comms_context(
            spec=spec,
            phase_key="pilot",
            comms=comms,
            tenant_name=SCRIPT,
            recipient_name=SCRIPT,
            roles=[GA],
            effective_from=WHEN,
            page_url=PAGE_URL,
        )
        rendered = CommsRenderer().render("default", "s", context)
        assert "<script>" not in rendered.html
        assert rendered.html.count(SCRIPT_ESCAPED) == 3
        assert rendered.text.count(SCRIPT) == 3

    def test_missing_helpdesk_names_the_setting(self) -> None:
        spec = read_plan_file(PLANS_DIR / "default.yaml")
        with pytest.raises(CommsRenderError, match=r"no helpdesk contact: set comms\.helpdesk"):
            context_for(spec, "pilot", CommsSettings(sender="pim@contoso.test"))

    def test_missing_template_value_is_named(self) -> None:
        spec = read_plan_file(PLANS_DIR / "default.yaml")
        context = context_for(spec, "pilot")
        del context["page_url"]
        with pytest.raises(CommsRenderError, match="needs a value that is missing: 'page_url'"):
            CommsRenderer().render("default", "s", context)

    def test_unknown_template_is_named(self) -> None:
        spec = read_plan_file(PLANS_DIR / "default.yaml")
        with pytest.raises(CommsRenderError, match=r"no comms template 'nope'"):
            CommsRenderer().render("nope", "s", context_for(spec, "pilot"))


# --- through the engine and the API ------------------------------------------------------------


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (120, 20)


class Crash(BaseException):
    """The process dies: not an error the tick boundary could catch and record."""


@dataclass
class Expected:
    """Who each comms phase must mail, worked out from the tenant before the plan runs."""

    pilot: set[str]
    all_admins: set[str]
    roles: dict[str, set[str]]  # user id -> target roles held permanently Active
    users: dict[str, dict[str, Any]]


async def expected_recipients(rig: Rig) -> Expected:
    state = await rig.sim("GET", "/_sim/state")
    profile = await rig.sim("GET", "/_sim/profile")
    break_glass = set(profile["break_glass_ids"])
    team_id = profile["bindings"]["it_platform_team"]["id"]
    team = next(set(g["member_ids"]) for g in state["groups"] if g["id"] == team_id)
    roles: dict[str, set[str]] = {}
    for a in state["active_assignments"]:
        if (
            a["principal_type"] == "user"
            and a["role_definition_id"] in TARGET_IDS
            and a["assignment_type"] == "Assigned"
            and a["end"] is None
            and a["principal_id"] not in break_glass
        ):
            roles.setdefault(a["principal_id"], set()).add(a["role_definition_id"])
    pilot = set(roles) & team
    users = {u["id"]: u for u in state["users"]}
    return Expected(pilot, set(roles) - pilot, roles, users)


def mails_by_phase(outbox: list[dict[str, Any]], plan_id: str) -> Counter[tuple[str, str]]:
    """(phase, principal) -> mails, read from the idempotency key each mail carries."""
    counts: Counter[tuple[str, str]] = Counter()
    for mail in outbox:
        (key,) = mail["extended_properties"].values()
        plan, phase, operation, principal = key.split(":")
        assert (plan, operation) == (plan_id, "send_mail")
        counts[(phase, principal)] += 1
    return counts


def mail_entries(rig: Rig, plan_id: str) -> list[JournalEntry]:
    with rig.session_factory() as session:
        return list(
            session.exec(
                select(JournalEntry)
                .where(JournalEntry.plan_id == plan_id, JournalEntry.operation == "send_mail")
                .order_by(JournalEntry.id)  # type: ignore[arg-type]
            ).all()
        )


async def send_mail_calls(rig: Rig) -> int:
    stats = await rig.sim("GET", "/_sim/requests")
    return sum(
        r["count"]
        for r in stats["by_route"]
        # The preflight's permission probe answers 400; only accepted sends (202) count.
        if r["method"] == "POST" and r["route"].endswith("sendMail") and r["status"] == 202
    )


async def start_plan(rig: Rig, clients: Clients) -> str:
    created = await clients.api.post(
        "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default"}
    )
    assert created.status_code == 201, created.text
    plan_id: str = created.json()["id"]
    started = await clients.api.post(f"/api/v1/plans/{plan_id}/start")
    assert started.status_code == 200, started.text
    return plan_id


async def drive(rig: Rig, clients: Clients, plan_id: str, until: set[str]) -> dict[str, Any]:
    plan: dict[str, Any] = {}
    for _ in range(60):
        plan = (await clients.api.get(f"/api/v1/plans/{plan_id}")).json()
        if plan["state"] in until:
            return plan
        for phase in plan["phases"]:
            if phase["state"] == "awaiting_gate":
                advanced = await clients.api.post(f"/api/v1/plans/{plan_id}/advance")
                assert advanced.status_code == 200, advanced.text
        await tick(rig.ectx)
        rig.clock.advance(days=1)
    raise AssertionError(f"plan did not reach {until}: {plan}")


async def tick_until_crash(rig: Rig) -> None:
    for _ in range(10):
        await tick(rig.ectx)


def phase_of(plan: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for p in plan["phases"] if p["key"] == key)


def set_helpdesk(rig: Rig, helpdesk: dict[str, Any] | None) -> None:
    with unit_of_work(rig.session_factory) as session:
        tenant = session.get(Tenant, rig.tenant_id)
        assert tenant is not None
        tenant.comms = {**tenant.comms, "helpdesk": helpdesk}
        session.add(tenant)


class TestSendComms:
    async def test_one_mail_per_converted_admin_per_phase(self, rig: Rig, clients: Clients) -> None:
        expected = await expected_recipients(rig)
        profile = await rig.sim("GET", "/_sim/profile")
        plan_id = await start_plan(rig, clients)
        preview = await clients.api.post(f"/api/v1/plans/{plan_id}/preview")
        assert preview.status_code == 200, preview.text
        plan = await drive(rig, clients, plan_id, {"completed", "failed"})
        assert plan["state"] == "completed", plan

        after = await rig.sim("GET", "/_sim/state")
        still_active = {
            (a["principal_id"], a["role_definition_id"])
            for a in after["active_assignments"]
            if a["role_definition_id"] in TARGET_IDS and a["end"] is None
        }
        # The last active Privileged Role Administrator keeps that role Active: not announced.
        kept = {(p, r) for p, r in still_active if p in expected.roles}
        assert kept
        assert {r for _, r in kept} <= {PRA, GA}
        announced = {
            user: {r for r in roles if (user, r) not in kept}
            for user, roles in expected.roles.items()
        }

        outbox = await rig.sim("GET", "/_sim/outbox")
        counts = mails_by_phase(outbox, plan_id)
        assert set(counts.values()) == {1}
        want = {("pilot", u) for u in expected.pilot if announced[u]} | {
            ("all-admins", u) for u in expected.all_admins if announced[u]
        }
        assert set(counts) == want
        assert len(expected.pilot) >= 2
        assert len(expected.all_admins) >= 8

        # What the dry run promised is what went out.
        promised = {
            p["phase"]: c["subject"]
            for p in preview.json()["phases"]
            for c in p["changes"]
            if c["kind"] == "send_comms"
        }
        sent = Counter(phase for phase, _ in counts)
        assert promised == {phase: f"{n} recipient(s)" for phase, n in sent.items()}

        by_key = {next(iter(m["extended_properties"].values())): m for m in outbox}
        for (phase, user), _ in counts.items():
            mail = by_key[f"{plan_id}:{phase}:send_mail:{user}"]
            person = expected.users[user]
            assert mail["to"] == [person["mail"] or person["user_principal_name"]]
            assert mail["sender_id"] == profile["comms"]["sender"]
            assert mail["save_to_sent_items"] is True
            assert mail["content_type"] == "HTML"
            assert mail["subject"] == "Your admin roles are becoming just-in-time"
            body = mail["body"]
            assert f"Hi {person['display_name']}," in body
            assert profile["comms"]["helpdesk"]["name"] in body
            assert profile["comms"]["helpdesk"]["email"] in body
            assert f"/comms/{plan_id}/{phase}" in body
            rows = role_rows(body)
            assert {_role_name(r) for r in announced[user]} == set(rows)
            assert {duration for duration, _ in rows.values()} == {COMMS_PHASES[phase]}

        entries = mail_entries(rig, plan_id)
        assert len(entries) == len(counts)
        assert {e.status for e in entries} == {"applied"}
        assert await send_mail_calls(rig) == len(counts)

    async def test_crash_after_send_is_verified_in_sent_items_not_resent(
        self, rig: Rig, clients: Clients, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        expected = await expected_recipients(rig)
        crashed: list[int] = []

        def record_then_crash(session: Any, entry_id: int, **kwargs: Any) -> JournalEntry:
            # The mail went out; the process dies before the outcome is committed.
            if not crashed and kwargs["status"].value == "applied":
                crashed.append(entry_id)
                raise Crash
            return record_outcome(session, entry_id, **kwargs)

        monkeypatch.setattr(RECORD_OUTCOME, record_then_crash)
        plan_id = await start_plan(rig, clients)
        with pytest.raises(Crash):
            await tick_until_crash(rig)
        assert len(crashed) == 1

        outbox = await rig.sim("GET", "/_sim/outbox")
        assert len(outbox) == 1
        entries = mail_entries(rig, plan_id)
        assert [(e.id, e.status, e.completed_at) for e in entries] == [
            (crashed[0], "pending", None)
        ]
        plan = (await clients.api.get(f"/api/v1/plans/{plan_id}")).json()
        assert phase_of(plan, "pilot")["state"] == "running"

        # Restart: the next tick picks the phase up where it died.
        for _ in range(5):
            await tick(rig.ectx)
        plan = (await clients.api.get(f"/api/v1/plans/{plan_id}")).json()
        assert phase_of(plan, "pilot")["state"] == "completed", plan

        counts = mails_by_phase(await rig.sim("GET", "/_sim/outbox"), plan_id)
        assert counts == Counter({("pilot", u): 1 for u in expected.pilot})
        assert await send_mail_calls(rig) == len(expected.pilot)
        by_id = {e.id: e for e in mail_entries(rig, plan_id)}
        assert {e.status for e in by_id.values()} == {"applied"}
        assert by_id[crashed[0]].outcome == {"verified_in_sent_items": True}
        others = [e for i, e in by_id.items() if i != crashed[0]]
        assert others
        assert all(e.outcome and "verified_in_sent_items" not in e.outcome for e in others)

    async def test_retry_of_a_failed_phase_does_not_resend(
        self, rig: Rig, clients: Clients, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        expected = await expected_recipients(rig)
        assert len(expected.pilot) >= 2
        applied: list[int] = []

        def fail_second(session: Any, entry_id: int, **kwargs: Any) -> JournalEntry:
            # The database refuses the second outcome write once: the phase fails.
            if kwargs["status"].value == "applied":
                applied.append(entry_id)
                if len(applied) == 2:
                    raise RuntimeError("database connection lost")
            return record_outcome(session, entry_id, **kwargs)

        monkeypatch.setattr(RECORD_OUTCOME, fail_second)
        plan_id = await start_plan(rig, clients)
        plan = await drive(rig, clients, plan_id, {"failed"})
        pilot = phase_of(plan, "pilot")
        assert pilot["state"] == "failed"
        assert await send_mail_calls(rig) == 2
        statuses = [e.status for e in mail_entries(rig, plan_id)]
        assert statuses == ["applied", "pending"]

        retried = await clients.api.post(f"/api/v1/plans/{plan_id}/retry", json={"reason": "db"})
        assert retried.status_code == 200, retried.text
        for _ in range(5):
            await tick(rig.ectx)
        plan = (await clients.api.get(f"/api/v1/plans/{plan_id}")).json()
        assert phase_of(plan, "pilot")["state"] == "completed", plan

        counts = mails_by_phase(await rig.sim("GET", "/_sim/outbox"), plan_id)
        assert counts == Counter({("pilot", u): 1 for u in expected.pilot})
        assert await send_mail_calls(rig) == len(expected.pilot)
        entries = mail_entries(rig, plan_id)
        assert [e.status for e in entries] == ["applied"] * len(expected.pilot)
        assert entries[1].outcome == {"verified_in_sent_items": True}

    async def test_missing_helpdesk_fails_the_step_and_sends_nothing(
        self, rig: Rig, clients: Clients
    ) -> None:
        expected = await expected_recipients(rig)
        plan_id = await start_plan(rig, clients)
        helpdesk = (await rig.sim("GET", "/_sim/profile"))["comms"]["helpdesk"]
        # Preflight refuses a tenant without a helpdesk; here it is removed after the start.
        set_helpdesk(rig, None)

        refused = await clients.api.get(f"/api/v1/plans/{plan_id}/phases/pilot/comms/preview")
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "comms.helpdesk" in refused.json()["detail"]

        plan = await drive(rig, clients, plan_id, {"failed", "completed"})
        pilot = phase_of(plan, "pilot")
        assert plan["state"] == "failed"
        assert pilot["state"] == "failed"
        assert "comms.helpdesk" in (pilot["status_reason"] or ""), plan
        assert await rig.sim("GET", "/_sim/outbox") == []
        assert mail_entries(rig, plan_id) == []

        set_helpdesk(rig, helpdesk)
        retried = await clients.api.post(f"/api/v1/plans/{plan_id}/retry")
        assert retried.status_code == 200, retried.text
        for _ in range(3):
            await tick(rig.ectx)
        counts = mails_by_phase(await rig.sim("GET", "/_sim/outbox"), plan_id)
        assert counts == Counter({("pilot", u): 1 for u in expected.pilot})


def _role_name(role_id: str) -> str:
    return str(next(r["name"] for r in plan_data()["roles"] if r["id"] == role_id))


class TestPreviewAndPage:
    async def test_preview_renders_before_sending_and_the_page_serves_it(
        self, rig: Rig, clients: Clients
    ) -> None:
        created = await clients.api.post(
            "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default"}
        )
        plan_id = created.json()["id"]
        profile = await rig.sim("GET", "/_sim/profile")
        helpdesk = profile["comms"]["helpdesk"]

        for phase, duration in COMMS_PHASES.items():
            url = f"/api/v1/plans/{plan_id}/phases/{phase}/comms/preview"
            response = await clients.api.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["subject"] == "Your admin roles are becoming just-in-time"
            for text in (body["html"], body["text"]):
                assert helpdesk["name"] in text
                assert helpdesk["phone"] in text
                assert "Contoso (simulated)" in text
            assert role_rows(body["html"]) == dict.fromkeys(
                TARGET_NAMES, (duration, "multi-factor sign-in, a one-line reason")
            )
            page_url = f"http://127.0.0.1:8000/comms/{plan_id}/{phase}"
            assert f'href="{page_url}"' in body["html"]

            page = await clients.anon.get(f"/comms/{plan_id}/{phase}")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.text == body["html"]
            # Served without sign-in, so the page may run nothing and load nothing.
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "script-src" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"

            assert (await clients.anon.get(url)).status_code == 401

        assert await rig.sim("GET", "/_sim/outbox") == []
        assert (await clients.api.get(f"/api/v1/plans/{plan_id}/operations")).json() == []
        plan = (await clients.api.get(f"/api/v1/plans/{plan_id}")).json()
        assert (plan["state"], plan["version"]) == (created.json()["state"], 1)

        no_comms = await clients.api.get(f"/api/v1/plans/{plan_id}/phases/feedback/comms/preview")
        assert no_comms.status_code == 404
        assert no_comms.headers["content-type"] == "application/problem+json"
        assert "sends no comms" in no_comms.json()["detail"]
        unknown = await clients.anon.get(f"/comms/{plan_id}/no-such-phase")
        assert unknown.status_code == 404
        assert (await clients.anon.get("/comms/not-a-plan/pilot")).status_code == 404

    async def test_page_escapes_tenant_values(self, rig: Rig, clients: Clients) -> None:
        set_helpdesk(rig, {"name": SCRIPT, "email": "desk@contoso.test"})
        created = await clients.api.post(
            "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default"}
        )
        plan_id = created.json()["id"]
        page = await clients.anon.get(f"/comms/{plan_id}/pilot")
        assert page.status_code == 200
        assert SCRIPT_ESCAPED in page.text
        assert "<script>" not in page.text
        preview = await clients.api.get(f"/api/v1/plans/{plan_id}/phases/pilot/comms/preview")
        assert SCRIPT_ESCAPED in preview.json()["html"]
        assert SCRIPT in preview.json()["text"]
