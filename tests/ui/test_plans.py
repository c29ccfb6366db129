"""Plan pages and actions: what each role sees, what each form does, how refusals read."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import select

from app.db.models import Phase, Plan
from app.db.session import unit_of_work
from app.domain.tenant import TenantSpec
from app.services import plans, tenants
from app.services.context import AppContext
from tests.ui.conftest import SIM_URL, Ui, context_of, template_of


def _page(ui: Ui, plan_id: str) -> Any:
    response = ui.client.get(f"/ui/plans/{plan_id}")
    assert response.status_code == 200, response.text
    return response


def _flashes(response: Any) -> list[tuple[str, str, str | None, list[str]]]:
    return [(f.level, f.title, f.detail, f.items) for f in context_of(response)["flashes"]]


def _state(ctx: AppContext, plan_id: str) -> tuple[str, int]:
    with ctx.session_factory() as session:
        plan = session.get(Plan, plan_id)
        assert plan is not None
        return plan.state, plan.version


def _start(ui: Ui, plan_id: str, **over: str) -> Any:
    data = {"reason": "go live with the pilot", "confirm": "yes", **over}
    return ui.post(f"/ui/plans/{plan_id}/actions/start", **data)


class TestPlanList:
    def test_empty_state_invites_an_operator_to_create_one(self, as_operator: Ui) -> None:
        response = as_operator.client.get("/ui/plans")
        assert template_of(response) == "plans/list.html"
        assert context_of(response)["items"] == []
        assert context_of(response)["can_create"] is True
        assert "No plans yet" in response.text
        assert 'href="/ui/plans/new"' in response.text

    def test_empty_state_for_a_viewer_has_no_create_link(self, as_viewer: Ui) -> None:
        response = as_viewer.client.get("/ui/plans")
        assert "No plans yet" in response.text
        assert context_of(response)["can_create"] is False
        assert "/ui/plans/new" not in response.text

    def test_lists_plans_with_state_and_tenant(self, as_viewer: Ui, plan_id: str) -> None:
        response = as_viewer.client.get("/ui/plans")
        (item,) = context_of(response)["items"]
        assert item["view"].row.id == plan_id
        assert item["tenant_name"] == "Contoso (simulated)"
        assert item["current"].row.key == "pilot"
        assert 'class="badge tone-neutral">draft<' in response.text

    def test_filter_by_tenant(self, as_viewer: Ui, plan_id: str) -> None:
        assert context_of(as_viewer.client.get("/ui/plans?tenant=nope"))["items"] == []


class TestCreatePlan:
    def test_operator_creates_a_draft(
        self, as_operator: Ui, ctx: AppContext, tenant_id: str
    ) -> None:
        form = as_operator.client.get(f"/ui/plans/new?tenant={tenant_id}")
        assert template_of(form) == "plans/new.html"
        assert context_of(form)["values"]["tenant_id"] == tenant_id
        assert {t.name for t in context_of(form)["templates"]} >= {"default", "demo"}

        response = as_operator.post(
            "/ui/plans", tenant_id=tenant_id, template="demo", name="Q3 rollout"
        )
        assert response.status_code == 303
        plan_id = response.headers["location"].rsplit("/", 1)[1]
        page = as_operator.client.get(response.headers["location"])
        assert context_of(page)["page"].plan.name == "Q3 rollout"
        assert context_of(page)["page"].plan.created_by == "operator-ui (operator)"
        assert _state(ctx, plan_id) == ("draft", 1)
        assert _flashes(page)[0][1] == "Plan “Q3 rollout” created as a draft."

    def test_unknown_template_is_shown_on_the_form(self, as_operator: Ui, tenant_id: str) -> None:
        response = as_operator.post("/ui/plans", tenant_id=tenant_id, template="nope")
        assert response.status_code == 422
        assert template_of(response) == "plans/new.html"
        assert "no plan template named 'nope'" in context_of(response)["errors"]["form"]

    def test_missing_fields_are_named(self, as_operator: Ui, tenant_id: str) -> None:
        response = as_operator.post("/ui/plans", template="default")
        assert response.status_code == 422
        assert context_of(response)["errors"] == {"tenant_id": "Choose a tenant."}

    def test_unknown_tenant(self, as_operator: Ui, tenant_id: str) -> None:
        response = as_operator.post("/ui/plans", tenant_id="nope", template="default")
        assert response.status_code == 422
        assert context_of(response)["errors"]["tenant_id"] == "no tenant with id nope"

    def test_without_tenants_the_form_says_so(self, as_operator: Ui) -> None:
        response = as_operator.client.get("/ui/plans/new")
        assert context_of(response)["tenants"] == []
        assert "No tenants yet" in response.text

    def test_viewer_cannot_create(self, as_viewer: Ui, tenant_id: str) -> None:
        assert as_viewer.client.get("/ui/plans/new").status_code == 403
        response = as_viewer.post("/ui/plans", tenant_id=tenant_id, template="default")
        assert response.status_code == 403
        assert template_of(response) == "errors/403.html"
        assert "needs the operator role" in context_of(response)["detail"]
        assert context_of(as_viewer.client.get("/ui/plans"))["items"] == []


class TestWhatEachRoleSees:
    def test_viewer_sees_no_action_buttons(self, as_viewer: Ui, plan_id: str) -> None:
        response = _page(as_viewer, plan_id)
        page = context_of(response)["page"]
        assert page.view.allowed_events  # the plan could move, just not by this caller
        assert page.actions == []
        assert page.can_operate is False
        assert "/actions/" not in response.text
        assert "Run preflight" not in response.text
        assert "actions need the operator role" in response.text

    def test_operator_sees_exactly_the_allowed_events(self, as_operator: Ui, plan_id: str) -> None:
        response = _page(as_operator, plan_id)
        actions = context_of(response)["page"].actions
        assert [(a.name, a.destructive) for a in actions] == [("start", True), ("abort", True)]
        assert re.findall(r'id="action-(\w+)"', response.text) == ["start", "abort"]

    @pytest.mark.parametrize("action", ["start", "pause", "abort", "rollback"])
    def test_viewer_post_is_forbidden_and_changes_nothing(
        self, as_viewer: Ui, ctx: AppContext, plan_id: str, action: str
    ) -> None:
        response = as_viewer.post(
            f"/ui/plans/{plan_id}/actions/{action}", reason="forged", confirm="yes"
        )
        assert response.status_code == 403
        assert context_of(response)["detail"].startswith("This needs the operator role")
        assert _state(ctx, plan_id) == ("draft", 1)

    def test_viewer_cannot_open_an_action_form_or_run_preflight(
        self, as_viewer: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        assert as_viewer.client.get(f"/ui/plans/{plan_id}/actions/start").status_code == 403
        assert as_viewer.post(f"/ui/plans/{plan_id}/preflight").status_code == 403
        with ctx.session_factory() as session:
            assert [t.event for t in plans.history(session, plan_id)] == ["create"]


class TestStart:
    def test_operator_starts_against_the_tenant(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        form = as_operator.client.get(f"/ui/plans/{plan_id}/actions/start")
        assert template_of(form) == "plans/action.html"
        assert context_of(form)["destructive"] is True
        assert context_of(form)["tenant_name"] == "Contoso (simulated)"
        assert 'name="expected_version" value="1"' in form.text

        response = _start(as_operator, plan_id, expected_version="1")
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/plans/{plan_id}"
        page = as_operator.client.get(response.headers["location"])
        assert _flashes(page) == [
            ("success", "Start: done.", "The plan is now running (version 3).", [])
        ]
        assert context_of(page)["page"].plan.state == "running"
        assert context_of(page)["page"].preflight["passed"] is True
        with ctx.session_factory() as session:
            start = next(t for t in plans.history(session, plan_id) if t.event == "start")
        assert (start.actor, start.reason) == ("operator-ui (operator)", "go live with the pilot")
        assert start.details is not None
        assert start.details["baseline_items"] > 0
        baseline = as_operator.client.get(f"/ui/plans/{plan_id}/baseline")
        assert context_of(baseline)["inventory"].pager.total == start.details["baseline_items"]

    def test_unconfirmed_start_changes_nothing(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        response = _start(as_operator, plan_id, confirm="")
        assert response.status_code == 422
        assert template_of(response) == "plans/action.html"
        assert context_of(response)["errors"] == {
            "confirm": "Tick the box to confirm; nothing was changed."
        }
        assert context_of(response)["values"]["reason"] == "go live with the pilot"
        assert _state(ctx, plan_id) == ("draft", 1)

    def test_a_reason_is_required(self, as_operator: Ui, ctx: AppContext, plan_id: str) -> None:
        response = _start(as_operator, plan_id, reason=" ")
        assert response.status_code == 422
        assert "reason" in context_of(response)["errors"]
        assert _state(ctx, plan_id) == ("draft", 1)

    def test_stale_form_is_refused_with_a_warning(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        response = _start(as_operator, plan_id, expected_version="7")
        page = as_operator.client.get(response.headers["location"])
        ((level, title, detail, _),) = _flashes(page)
        assert level == "warning"
        assert title == "Start not applied: the plan changed since you opened the form."
        assert detail == "It is now draft (version 1). Check it and try again."
        assert _state(ctx, plan_id) == ("draft", 1)

    def test_failed_preflight_lists_each_failed_check(
        self, as_operator: Ui, ctx: AppContext, sim_profile: dict[str, Any]
    ) -> None:
        spec = TenantSpec.model_validate(
            {
                **sim_profile,
                "name": "No break-glass",
                "graph_base_url": SIM_URL,
                "break_glass_ids": [
                    "00000000-0000-4000-8000-00000000aaa1",
                    "00000000-0000-4000-8000-00000000aaa2",
                ],
            }
        )
        with unit_of_work(ctx.session_factory) as session:
            tenant = tenants.create_tenant(
                session, spec=spec, box=ctx.secret_box, now=ctx.clock.now()
            )
            plan_id = plans.create_plan(
                session,
                tenant_id=tenant.id,
                plans_dir=None,
                template="default",
                spec_data=None,
                name=None,
                binding_overrides={},
                actor="tester",
                now=ctx.clock.now(),
            ).row.id
        response = _start(as_operator, plan_id)
        page = as_operator.client.get(response.headers["location"])
        ((level, title, detail, items),) = _flashes(page)
        assert level == "error"
        assert title == "Start refused: the preflight checks failed, so nothing was changed."
        assert detail == "Fix these and start again:"
        assert items
        assert all(item.startswith("break_glass: ") for item in items)
        assert _state(ctx, plan_id) == ("draft", 1)
        failures = context_of(page)["page"].preflight_failures
        assert [c["name"] for c in failures] == ["break_glass"] * len(failures)
        assert "These checks failed" in page.text


class TestRefusals:
    def test_refused_action_flashes_the_reason_and_the_allowed_events(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        response = as_operator.post(f"/ui/plans/{plan_id}/actions/pause", reason="hold it")
        assert response.status_code == 303
        page = as_operator.client.get(response.headers["location"])
        assert _flashes(page) == [
            (
                "error",
                "Pause refused: pause does not apply to a draft plan.",
                "The plan is draft. Allowed now: start, abort.",
                [],
            )
        ]
        assert _state(ctx, plan_id) == ("draft", 1)

    def test_form_for_an_action_that_does_not_apply_goes_back_with_the_reason(
        self, as_operator: Ui, plan_id: str
    ) -> None:
        response = as_operator.client.get(f"/ui/plans/{plan_id}/actions/retry")
        assert response.status_code == 303
        page = as_operator.client.get(response.headers["location"])
        ((level, title, detail, _),) = _flashes(page)
        assert level == "error"
        assert title == "Retry refused: retry does not apply to a draft plan."
        assert detail == "The plan is draft. Allowed now: start, abort."

    def test_unknown_action_is_not_found(self, as_operator: Ui, plan_id: str) -> None:
        response = as_operator.post(f"/ui/plans/{plan_id}/actions/tick", reason="sneaky")
        assert response.status_code == 400
        assert template_of(response) == "errors/error.html"

    def test_unknown_plan(self, as_operator: Ui) -> None:
        response = as_operator.post("/ui/plans/nope/actions/pause", reason="whatever")
        assert response.status_code == 404
        assert template_of(response) == "errors/404.html"


class TestLifecycle:
    def test_pause_resume_advance_rollback(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        assert _start(as_operator, plan_id).status_code == 303
        as_operator.post(f"/ui/plans/{plan_id}/actions/pause", reason="hold on")
        assert _state(ctx, plan_id)[0] == "paused"
        page = _page(as_operator, plan_id)
        assert [a.name for a in context_of(page)["page"].actions] == ["resume", "rollback", "abort"]
        as_operator.post(f"/ui/plans/{plan_id}/actions/resume", reason="carry on")
        assert _state(ctx, plan_id)[0] == "running"

        # The pilot finished and the feedback phase waits at its manual gate.
        with unit_of_work(ctx.session_factory) as session:
            for phase in session.exec(select(Phase).where(Phase.plan_id == plan_id)):
                if phase.key == "pilot":
                    phase.state = "completed"
                elif phase.key == "feedback":
                    phase.state = "awaiting_gate"
                session.add(phase)
        page = _page(as_operator, plan_id)
        gated = {p.row.key: p.advance for p in context_of(page)["page"].phases}
        assert gated["feedback"] is not None
        assert [k for k, a in gated.items() if a is not None] == ["feedback"]
        assert 'id="advance-feedback"' in page.text
        form = as_operator.client.get(f"/ui/plans/{plan_id}/actions/advance?phase=feedback")
        assert context_of(form)["phase_title"] == "Adjust settings from the pilot's feedback"
        as_operator.post(
            f"/ui/plans/{plan_id}/actions/advance", reason="8 hours it is", phase="feedback"
        )
        page = _page(as_operator, plan_id)
        states = {p.row.key: p.row.state for p in context_of(page)["page"].phases}
        assert states["feedback"] == "running"
        assert _flashes(page)[0][1] == "Advance (phase feedback): done."

        form = as_operator.client.get(f"/ui/plans/{plan_id}/actions/rollback")
        assert [k for k, _ in context_of(form)["rollback_choices"]] == ["pilot", "feedback"]
        response = as_operator.post(
            f"/ui/plans/{plan_id}/actions/rollback", reason="undo it all", confirm="yes"
        )
        assert response.status_code == 303
        assert _state(ctx, plan_id)[0] == "rolling_back"
        with ctx.session_factory() as session:
            events = [(t.event, t.reason) for t in plans.history(session, plan_id)]
        assert ("pause", "hold on") in events
        assert ("resume", "carry on") in events
        assert ("advance", "8 hours it is") in events
        assert ("rollback", "undo it all") in events

    def test_preflight_button_records_a_note(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        response = as_operator.post(f"/ui/plans/{plan_id}/preflight")
        page = as_operator.client.get(response.headers["location"])
        assert _flashes(page)[0][:2] == ("success", "Preflight passed.")
        history = as_operator.client.get(f"/ui/plans/{plan_id}/history")
        note = context_of(history)["entries"][0]
        assert note.row.event == "preflight"
        assert note.passed is True
        assert len(note.checks) > 3
        assert _state(ctx, plan_id) == ("draft", 1)


class TestLiveFragment:
    def test_unchanged_fragment_answers_204(self, as_viewer: Ui, plan_id: str) -> None:
        first = as_viewer.client.get(f"/ui/plans/{plan_id}/live")
        assert template_of(first) == "partials/_plan_live.html"
        seen = context_of(first)["fingerprint"]
        assert f"seen={seen}" in first.text
        assert 'hx-trigger="every 2s"' in first.text
        again = as_viewer.client.get(f"/ui/plans/{plan_id}/live?seen={seen}")
        assert again.status_code == 204

    def test_fragment_does_not_eat_the_flash(self, as_operator: Ui, plan_id: str) -> None:
        as_operator.post(f"/ui/plans/{plan_id}/actions/pause", reason="refused anyway")
        fragment = as_operator.client.get(f"/ui/plans/{plan_id}/live")
        assert context_of(fragment)["flashes"] == []
        assert len(_flashes(_page(as_operator, plan_id))) == 1

    def test_polling_stops_once_the_plan_is_finished(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        as_operator.post(f"/ui/plans/{plan_id}/actions/abort", reason="not this one", confirm="yes")
        assert _state(ctx, plan_id)[0] == "cancelled"
        fragment = as_operator.client.get(f"/ui/plans/{plan_id}/live")
        assert "hx-trigger" not in fragment.text
        assert context_of(fragment)["page"].actions == []


def test_aborting_a_draft_says_nothing_is_undone(as_operator: Ui, plan_id: str) -> None:
    form = as_operator.client.get(f"/ui/plans/{plan_id}/actions/abort")
    assert context_of(form)["help"].startswith("Cancels the plan. Nothing has changed")
