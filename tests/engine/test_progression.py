"""Progression against the simulated tenant: schedule and gates, pause/resume at an item
boundary, retry of exactly the failed items, windows and freeze, and the plan lease (inv. 6)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from app.db.models import JournalEntry, Plan, Transition, WorkItem
from app.db.models import Lease as LeaseRow
from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.db.session import unit_of_work
from app.domain.roles import GLOBAL_ADMINISTRATOR
from app.engine.context import EngineContext, Lease, LeaseLostError, claim_plan, fenced
from app.engine.tick import tick
from app.graph.factory import GraphClientFactory
from app.problems import TransitionRefusedError
from app.services import plans, tenants
from app.services.plans import PhaseView, PlanView
from app.settings import GraphSettings
from tests.engine.conftest import Rig
from tests.engine.helpers import eligible, permanent_active, rules_of
from tests.factories import plan_data

ELIGIBILITY_REQUESTS = "roleEligibilityScheduleRequests"
ASSIGNMENT_REQUESTS = "roleAssignmentScheduleRequests"
UNPACED = {"min_change_interval_seconds": 0, "write_quota": 100_000}


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (150, 24)


# -- plans -----------------------------------------------------------------------------------


def playbook_spec(*, pilot_after: str = "PT1H") -> dict[str, Any]:
    """The playbook's first three phases: an auto pilot, a manual feedback gate, then everyone."""
    data = plan_data()
    pilot, feedback = data["phases"][0], data["phases"][1]
    data["name"] = "progression"
    data["phases"] = [
        {**pilot, "starts_after": pilot_after, "steps": pilot["steps"][:2]},
        feedback,
        {
            "key": "all-admins",
            "title": "Every remaining admin role holder",
            "starts_after": "P14D",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        },
    ]
    return data


def convert_everyone_spec() -> dict[str, Any]:
    data = plan_data()
    data["name"] = "convert-everyone"
    data["phases"] = [
        {
            "key": "all-admins",
            "title": "Every admin role holder",
            "starts_after": "PT0S",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        }
    ]
    return data


def pilot_only_spec() -> dict[str, Any]:
    data = plan_data()
    data["name"] = "pilot-only"
    pilot = data["phases"][0]
    data["phases"] = [{**pilot, "starts_after": "PT0S", "steps": pilot["steps"][1:2]}]
    return data


# -- reading the plan --------------------------------------------------------------------------


def phase_of(view: PlanView, key: str) -> PhaseView:
    return next(p for p in view.phases if p.row.key == key)


def states(view: PlanView) -> dict[str, str]:
    return {p.row.key: p.row.state for p in view.phases}


def history(rig: Rig, plan_id: str) -> list[Transition]:
    with rig.session_factory() as session:
        return list(plans.history(session, plan_id))


def work_items(rig: Rig, plan_id: str) -> list[WorkItem]:
    with rig.session_factory() as session:
        return list(WorkItemRepository(session).list_items(plan_id))


def journal(rig: Rig, plan_id: str) -> list[JournalEntry]:
    with rig.session_factory() as session:
        return list(JournalRepository(session).list_for_plan(plan_id))


def configure_tenant(rig: Rig, **changes: Any) -> None:
    with unit_of_work(rig.session_factory) as session:
        tenants.update_tenant(
            session,
            tenant_id=rig.tenant_id,
            changes=changes,
            box=rig.ectx.secret_box,
            now=rig.clock.now(),
        )


async def schedule_writes(rig: Rig) -> Counter[tuple[str, int]]:
    """Schedule requests the simulated tenant answered, by (kind, status); batch items count."""
    stats = await rig.sim("GET", "/_sim/requests")
    found: Counter[tuple[str, int]] = Counter()
    for row in stats["by_route"]:
        kind = row["route"].rsplit("/", 1)[-1]
        if row["method"] == "POST" and kind in {ELIGIBILITY_REQUESTS, ASSIGNMENT_REQUESTS}:
            found[(kind, row["status"])] += row["count"]
    return found


async def activation_hours(rig: Rig) -> float:
    """Global Administrator's maximum activation, as the tenant has it now."""
    rules = rules_of(await rig.sim("GET", "/_sim/state"), GLOBAL_ADMINISTRATOR)
    return float(rules["Expiration_EndUser_Assignment"]["maximumDuration"]) / 3600


def last_seq(timeline: list[dict[str, Any]]) -> int:
    return max((c["seq"] for c in timeline), default=0)


def converted_once(timeline: list[dict[str, Any]], keys: set[tuple[str, str]]) -> list[str]:
    """Each key got exactly one Eligible and lost its Active exactly once."""
    added = Counter(
        (c["principal_id"], c["role_definition_id"])
        for c in timeline
        if c["kind"] == "eligible" and c["change"] == "added"
    )
    removed = Counter(
        (c["principal_id"], c["role_definition_id"])
        for c in timeline
        if c["kind"] == "active" and c["change"] == "removed"
    )
    return [
        f"{key}: eligible added {added[key]}x, active removed {removed[key]}x"
        for key in sorted(keys)
        if added[key] != 1 or removed[key] != 1
    ]


# -- a Graph transport that records writes and lets a test act between them -------------------


@dataclass
class SentBatch:
    kind: str  # ELIGIBILITY_REQUESTS or ASSIGNMENT_REQUESTS
    targets: list[tuple[str, str]]  # (principal, role) per item


Hook = Callable[[SentBatch, int], Awaitable[None]]


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the simulated tenant; after each schedule-request batch, calls ``hook``."""

    inner: httpx.AsyncBaseTransport
    hook: Hook | None = None
    batches: list[SentBatch] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/$batch"):
            items = json.loads(request.content)["requests"]
            kinds = {item["url"].rsplit("/", 1)[-1] for item in items}
            if len(kinds) == 1 and kinds <= {ELIGIBILITY_REQUESTS, ASSIGNMENT_REQUESTS}:
                sent = SentBatch(
                    kinds.pop(),
                    [(i["body"]["principalId"], i["body"]["roleDefinitionId"]) for i in items],
                )
                self.batches.append(sent)
                if self.hook is not None:
                    await self.hook(sent, len(self.batches))
        return response

    def sent(self, kind: str) -> list[tuple[str, str]]:
        return [t for b in self.batches if b.kind == kind for t in b.targets]


@pytest.fixture
async def engines(
    rig: Rig, graph_settings: GraphSettings
) -> AsyncIterator[Callable[..., tuple[EngineContext, Recorder]]]:
    """Engine contexts on the rig's database whose Graph traffic goes through a Recorder."""
    factories: list[GraphClientFactory] = []

    def build(
        *, worker_id: str = "test-worker", hook: Hook | None = None, **overrides: Any
    ) -> tuple[EngineContext, Recorder]:
        recorder = Recorder(httpx.ASGITransport(app=rig.sim_app), hook)
        factory = GraphClientFactory(graph_settings, transport_for=lambda _url: recorder)
        factories.append(factory)
        ectx = replace(rig.ectx, graph_factory=factory, worker_id=worker_id, **overrides)
        return ectx, recorder

    yield build
    for factory in factories:
        await factory.aclose_all()


# -- 1. schedule and gates ---------------------------------------------------------------------


class TestScheduledProgression:
    async def test_phases_start_on_schedule_and_a_manual_gate_waits_for_advance(
        self, rig: Rig
    ) -> None:
        t0 = rig.clock.now()
        plan_id = rig.create_plan(spec=playbook_spec(pilot_after="PT1H"))
        view = rig.act(plan_id, "start", reason="CHG-100")
        assert view.row.state == "scheduled"
        assert {p.row.key: p.row.due_at for p in view.phases} == {
            "pilot": t0 + timedelta(hours=1),
            "feedback": t0 + timedelta(days=7),
            "all-admins": t0 + timedelta(days=14),
        }
        traffic = (await rig.sim("GET", "/_sim/requests"))["total"]

        rig.clock.current = t0 + timedelta(minutes=59)
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "scheduled"
        assert set(states(view).values()) == {"pending"}
        assert (await rig.sim("GET", "/_sim/requests"))["total"] == traffic

        # Due at start + PT1H, auto gate: it runs to the end in the tick that finds it due.
        rig.clock.current = t0 + timedelta(hours=1)
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "running"
        assert states(view) == {
            "pilot": "completed",
            "feedback": "pending",
            "all-admins": "pending",
        }
        assert phase_of(view, "pilot").progress.done == 3
        pilot_events = [
            (h.event, h.actor, h.reason) for h in history(rig, plan_id) if h.phase_key == "pilot"
        ]
        assert pilot_events == [
            ("become_due", "scheduler (test-worker)", "its start time has come"),
            ("begin", "scheduler (test-worker)", "automatic progression"),
            ("finish", "scheduler (test-worker)", None),
        ]
        with pytest.raises(TransitionRefusedError, match="no phase is waiting at a manual gate"):
            rig.act(plan_id, "advance", reason="too early")

        rig.clock.current = t0 + timedelta(days=7) - timedelta(seconds=1)
        await tick(rig.ectx)
        assert phase_of(rig.view(plan_id), "feedback").row.state == "pending"

        rig.clock.current = t0 + timedelta(days=7)
        await tick(rig.ectx)
        feedback = phase_of(rig.view(plan_id), "feedback")
        assert feedback.row.state == "awaiting_gate"
        assert feedback.row.status_reason == "waiting for an operator to advance (manual gate)"

        # A week later all-admins is due by the calendar, but nothing passes a manual gate.
        rig.clock.current = t0 + timedelta(days=15)
        for _ in range(3):
            await tick(rig.ectx)
            rig.clock.advance(hours=6)
        view = rig.view(plan_id)
        assert states(view) == {
            "pilot": "completed",
            "feedback": "awaiting_gate",
            "all-admins": "pending",
        }
        assert await activation_hours(rig) == 4

        view = rig.act(plan_id, "advance", phase="feedback", reason="pilot says 4h is too short")
        assert phase_of(view, "feedback").row.state == "running"
        last = history(rig, plan_id)[-1]
        assert (last.event, last.actor, last.reason) == (
            "advance",
            "tester",
            "pilot says 4h is too short",
        )
        assert (last.phase_key, last.phase_from, last.phase_to) == (
            "feedback",
            "awaiting_gate",
            "running",
        )
        assert last.version == view.row.version
        assert last.at == rig.clock.now()

        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed"
        assert set(states(view).values()) == {"completed"}
        assert phase_of(view, "all-admins").progress.done > 10
        assert await activation_hours(rig) == 8


# -- 2. pause and resume -----------------------------------------------------------------------


class TestPauseAndResume:
    async def test_pause_stops_at_the_next_item_boundary_and_resume_finishes_each_once(
        self, rig: Rig, engines: Callable[..., tuple[EngineContext, Recorder]]
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        # One chunk of three items at a time, so there is a boundary to stop at.
        configure_tenant(rig, graph_limits={**UNPACED, "max_concurrency": 1})
        plan_id = rig.create_plan(spec=convert_everyone_spec())
        paused_after: list[int] = []

        async def operator_pauses(sent: SentBatch, count: int) -> None:
            removals = [b for b in recorder.batches if b.kind == ASSIGNMENT_REQUESTS]
            if sent.kind == ASSIGNMENT_REQUESTS and len(removals) == 2 and not paused_after:
                rig.act(plan_id, "pause", reason="change freeze for quarter close")
                paused_after.append(count)

        ectx, recorder = engines(hook=operator_pauses, batch_size=3)
        seq = last_seq(await rig.sim("GET", "/_sim/timeline"))
        rig.act(plan_id, "start", reason="CHG-200")
        await tick(ectx)

        assert paused_after, "the conversion never reached its second removal"
        # The chunk in flight finished; no batch of either kind was sent after the pause.
        assert len(recorder.batches) == paused_after[0]
        view = rig.view(plan_id)
        assert view.row.state == "paused"
        phase = phase_of(view, "all-admins")
        assert phase.row.state == "running"
        assert phase.row.status_reason == "the plan is paused"
        removed = recorder.sent(ASSIGNMENT_REQUESTS)
        assert phase.progress.done == len(removed) > 0
        assert phase.progress.failed == 0
        assert phase.progress.remaining > 0
        all_items = {(i.principal_id, i.role_definition_id) for i in work_items(rig, plan_id)}
        done_items = {
            (i.principal_id, i.role_definition_id)
            for i in work_items(rig, plan_id)
            if i.state == "done"
        }
        assert done_items == set(removed)

        # Paused across ticks and days: nothing is undone and nothing new is done.
        at_pause = await rig.sim("GET", "/_sim/state")
        for _ in range(3):
            rig.clock.advance(days=1)
            await tick(ectx)
            view = rig.view(plan_id)
            assert view.row.state == "paused"
            assert phase_of(view, "all-admins").progress == phase.progress
        assert len(recorder.batches) == paused_after[0]
        now = await rig.sim("GET", "/_sim/state")
        assert permanent_active(now) == permanent_active(at_pause)
        assert eligible(now) == eligible(at_pause)
        held_eligible = {(p, r) for p, r, _ in eligible(now)}
        held_active = {(p, r) for p, r, _ in permanent_active(now)}
        assert done_items <= held_eligible
        assert not done_items & held_active

        view = rig.act(plan_id, "resume", reason="quarter closed")
        assert view.row.state == "running"
        await tick(ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed", view.row.status_reason
        final = phase_of(view, "all-admins").progress
        assert final.failed == final.remaining == 0
        assert final.done > phase.progress.done

        items = work_items(rig, plan_id)
        converted = {(i.principal_id, i.role_definition_id) for i in items if i.state == "done"}
        made_eligible = {
            (i.principal_id, i.role_definition_id)
            for i in items
            if i.state in {"done", "kept_active"}
        }
        timeline = await rig.sim("GET", f"/_sim/timeline?since_seq={seq}")
        assert converted_once(timeline, converted) == []
        sent_eligible = recorder.sent(ELIGIBILITY_REQUESTS)
        assert sorted(sent_eligible) == sorted(made_eligible), "an item was sent twice"
        after = await rig.sim("GET", "/_sim/state")
        keys = [
            (a["principal_id"], a["role_definition_id"], a["directory_scope_id"])
            for a in after["eligible_assignments"]
        ]
        assert len(keys) == len(set(keys)), "duplicate eligibility"
        assert {(p, r) for p, r, _ in eligible(after)} == made_eligible | {
            (p, r) for p, r, _ in eligible(before)
        }
        assert all_items <= {(p, r) for p, r, _ in permanent_active(before)}
        operator = [
            (h.event, h.actor, h.reason) for h in history(rig, plan_id) if h.actor == "tester"
        ]
        assert operator == [
            ("create", "tester", "created from an inline spec"),
            ("start", "tester", "CHG-200"),
            ("pause", "tester", "change freeze for quarter close"),
            ("resume", "tester", "quarter closed"),
        ]


# -- 3. retry ----------------------------------------------------------------------------------


class TestRetry:
    async def test_retry_attempts_exactly_the_items_that_failed(self, rig: Rig) -> None:
        before = await rig.sim("GET", "/_sim/state")
        targets = {r["id"] for r in plan_data()["roles"]}
        break_glass = set((await rig.sim("GET", "/_sim/profile"))["break_glass_ids"])
        users = {u["id"] for u in before["users"]}
        holders = sorted(
            {
                p
                for p, r, _ in permanent_active(before)
                if r in targets and p in users and p not in break_glass
            }
        )
        # Two admins' accounts are gone from the directory while their standing assignments
        # linger: PIM refuses to make them eligible (PrincipalNotFound) on every attempt.
        missing = holders[3:5]
        parked = {pid: rig.sim_state.users.pop(pid) for pid in missing}
        failing = {(p, r) for p, r, _ in permanent_active(before) if p in missing and r in targets}
        assert len(failing) >= 2

        plan_id = rig.create_plan(spec=convert_everyone_spec())
        rig.act(plan_id, "start")
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "failed"
        phase = phase_of(view, "all-admins")
        assert phase.row.state == "failed"
        assert phase.row.status_reason is not None
        assert phase.row.status_reason.startswith(f"{len(failing)} item(s) failed after retries (")
        assert "PrincipalNotFound" in phase.row.status_reason
        assert phase.progress.failed == len(failing)
        assert phase.progress.remaining == 0
        assert phase.progress.done > 10
        done_before = phase.progress.done
        assert {
            (i.principal_id, i.role_definition_id)
            for i in work_items(rig, plan_id)
            if i.state == "failed"
        } == failing
        entries = journal(rig, plan_id)
        failed_entries = [e for e in entries if e.status == "failed"]
        assert {(e.target["principal_id"], e.target["role_id"]) for e in failed_entries} == failing
        assert {e.operation for e in failed_entries} == {"create_eligibility"}
        assert {e.error_code for e in failed_entries} == {"PrincipalNotFound"}
        settled = {e.id: (e.status, e.completed_at, e.graph_request_id) for e in entries}
        writes = await schedule_writes(rig)
        seq = last_seq(await rig.sim("GET", "/_sim/timeline"))
        # The engine's own rounds tried each failed item several times before giving up.
        assert writes[(ELIGIBILITY_REQUESTS, 400)] > len(failing)

        rig.sim_state.users.update(parked)
        view = rig.act(plan_id, "retry", reason="accounts restored")
        phase = phase_of(view, "all-admins")
        assert (view.row.state, phase.row.state) == ("running", "running")
        assert (phase.progress.failed, phase.progress.remaining) == (0, len(failing))
        assert phase.progress.done == done_before
        await tick(rig.ectx)

        view = rig.view(plan_id)
        assert view.row.state == "completed"
        phase = phase_of(view, "all-admins")
        assert phase.progress.done == done_before + len(failing)
        assert (phase.progress.failed, phase.progress.remaining) == (0, 0)
        delta = await schedule_writes(rig)
        delta.subtract(writes)
        assert +delta == Counter(
            {(ELIGIBILITY_REQUESTS, 201): len(failing), (ASSIGNMENT_REQUESTS, 201): len(failing)}
        )
        since = await rig.sim("GET", f"/_sim/timeline?since_seq={seq}")
        assert {(c["principal_id"], c["role_definition_id"]) for c in since} == failing
        assert converted_once(since, failing) == []
        for entry in journal(rig, plan_id):
            if entry.id in settled and settled[entry.id][0] != "failed":
                assert (entry.status, entry.completed_at, entry.graph_request_id) == settled[
                    entry.id
                ], f"entry {entry.id} ({entry.operation}) was touched by the retry"
        retried = [e for e in journal(rig, plan_id) if e.id in {f.id for f in failed_entries}]
        assert {e.status for e in retried} == {"applied"}


# -- 4. windows and freeze ---------------------------------------------------------------------

SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
TUESDAY_0900_PARIS = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # CET, UTC+1 until 29 March


class TestWindowsAndFreeze:
    async def test_a_due_phase_waits_for_the_window_and_says_until_when(self, rig: Rig) -> None:
        configure_tenant(
            rig,
            automation={
                "timezone": "Europe/Paris",
                "windows": [{"days": ["tue", "wed"], "start": "09:00", "end": "12:00"}],
            },
        )
        rig.clock.current = SATURDAY
        plan_id = rig.create_plan(spec=pilot_only_spec())
        rig.act(plan_id, "start")
        expected = (
            "outside the allowed progression windows; next window opens "
            "Tue 2026-03-10 09:00 Europe/Paris"
        )
        for moment in (SATURDAY, TUESDAY_0900_PARIS - timedelta(seconds=1)):
            rig.clock.current = moment
            await tick(rig.ectx)
            pilot = phase_of(rig.view(plan_id), "pilot")
            assert pilot.row.state == "due"
            assert pilot.row.status_reason == expected
            assert pilot.progress.total == 0
        assert sum((await schedule_writes(rig)).values()) == 0

        rig.clock.current = TUESDAY_0900_PARIS
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed"
        assert phase_of(view, "pilot").progress.done == 3
        begin = next(h for h in history(rig, plan_id) if h.event == "begin")
        assert begin.at == TUESDAY_0900_PARIS

    async def test_freeze_holds_automatic_progression_and_an_advance_waits_for_the_thaw(
        self, rig: Rig
    ) -> None:
        # Domain facts: windows and freezes apply to *automatic* progression. An operator's
        # advance is accepted and recorded, but the engine does no work for it while frozen.
        t0 = rig.clock.now()
        configure_tenant(rig, automation={"frozen": True})
        plan_id = rig.create_plan(spec=playbook_spec(pilot_after="PT0S"))
        rig.act(plan_id, "start")
        for _ in range(3):
            await tick(rig.ectx)
            pilot = phase_of(rig.view(plan_id), "pilot")
            assert pilot.row.state == "due"
            assert pilot.row.status_reason == "the tenant is frozen: automatic progression is off"
            rig.clock.advance(days=1)
        assert (await rig.sim("GET", "/_sim/requests"))["total"] == 0

        configure_tenant(rig, automation={"frozen": False})
        await tick(rig.ectx)
        assert phase_of(rig.view(plan_id), "pilot").row.state == "completed"

        rig.clock.current = t0 + timedelta(days=7)
        await tick(rig.ectx)
        assert phase_of(rig.view(plan_id), "feedback").row.state == "awaiting_gate"
        configure_tenant(rig, automation={"frozen": True})
        patches = await rule_patches(rig)

        view = rig.act(plan_id, "advance", reason="feedback is in; apply it after the freeze")
        assert phase_of(view, "feedback").row.state == "running"
        last = history(rig, plan_id)[-1]
        assert (last.event, last.actor, last.phase_key) == ("advance", "tester", "feedback")

        rig.clock.current = t0 + timedelta(days=15)
        for _ in range(2):
            await tick(rig.ectx)
            view = rig.view(plan_id)
            assert states(view) == {
                "pilot": "completed",
                "feedback": "running",
                "all-admins": "pending",
            }
            assert phase_of(view, "feedback").row.status_reason == "held: the tenant is frozen"
        assert await rule_patches(rig) == patches

        configure_tenant(rig, automation={"frozen": False})
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed"
        assert await rule_patches(rig) > patches


async def rule_patches(rig: Rig) -> int:
    stats = await rig.sim("GET", "/_sim/requests")
    return sum(
        r["count"]
        for r in stats["by_route"]
        if r["method"] == "PATCH" and r["route"].endswith("/rules/{ruleId}")
    )


# -- 5. lease and fencing ----------------------------------------------------------------------


def lease_row(rig: Rig, plan_id: str) -> LeaseRow:
    with rig.session_factory() as session:
        row = session.exec(select(LeaseRow).where(LeaseRow.name == f"plan:{plan_id}")).one()
        session.expunge(row)
        return row


def still_running() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


async def note_on_plan(ectx: EngineContext, lease: Lease | None, plan_id: str, text: str) -> None:
    """An engine write under ``lease``: it goes through the fence like every other."""
    assert lease is not None

    def note(session: Session) -> None:
        plan = session.get(Plan, plan_id)
        assert plan is not None
        plan.status_reason = text
        session.add(plan)

    await fenced(ectx, lease, note)


class TestLease:
    async def test_only_the_lease_holder_works_and_a_stale_token_cannot_write(
        self, rig: Rig
    ) -> None:
        plan_id = rig.create_plan(spec=pilot_only_spec())
        rig.act(plan_id, "start")
        worker_a = replace(rig.ectx, worker_id="worker-a")
        worker_b = replace(rig.ectx, worker_id="worker-b")

        lease_a = await claim_plan(worker_a, plan_id)
        assert lease_a is not None
        assert await claim_plan(worker_b, plan_id) is None
        for seconds in (0, 59):
            rig.clock.advance(seconds=seconds)
            await tick(worker_b)
            view = rig.view(plan_id)
            assert states(view) == {"pilot": "pending"}
            assert work_items(rig, plan_id) == []
            assert (await rig.sim("GET", "/_sim/requests"))["total"] == 0

        # worker-a stalls past its lease (60 s): worker-b takes over with a higher token.
        rig.clock.advance(seconds=2)
        await tick(worker_b)
        view = rig.view(plan_id)
        assert view.row.state == "completed"
        lease = lease_row(rig, plan_id)
        assert lease.holder == "worker-b"
        assert lease.token == lease_a.token + 1
        assert {e.fencing_token for e in journal(rig, plan_id)} == {lease.token}

        with pytest.raises(LeaseLostError, match=rf"\(token {lease_a.token}\) was taken over"):
            await note_on_plan(worker_a, lease_a, plan_id, "written by a stale worker")
        assert rig.view(plan_id).row.status_reason != "written by a stale worker"
        await note_on_plan(
            worker_b, await claim_plan(worker_b, plan_id), plan_id, "written by the holder"
        )
        assert rig.view(plan_id).row.status_reason == "written by the holder"

    async def test_a_worker_that_loses_its_lease_mid_conversion_stops_writing(
        self, rig: Rig, engines: Callable[..., tuple[EngineContext, Recorder]]
    ) -> None:
        configure_tenant(rig, graph_limits={**UNPACED, "max_concurrency": 1})
        plan_id = rig.create_plan(spec=convert_everyone_spec())
        rig.act(plan_id, "start")
        worker_b = replace(rig.ectx, worker_id="worker-b")
        seq = last_seq(await rig.sim("GET", "/_sim/timeline"))
        taken: list[int] = []

        async def stall_then_lose_lease(sent: SentBatch, count: int) -> None:
            if count == 1:
                # worker-a's Graph call outlives its lease; worker-b claims the plan meanwhile.
                rig.clock.advance(seconds=120)
                lease = await claim_plan(worker_b, plan_id)
                assert lease is not None
                taken.append(lease.token)

        worker_a, recorder = engines(worker_id="worker-a", hook=stall_then_lose_lease)
        await tick(worker_a)
        assert taken
        assert still_running() == [], "worker-a left work running after it gave up"
        assert len(recorder.batches) == 1, "worker-a kept calling Graph after losing its lease"
        first = set(recorder.batches[0].targets)
        entries = journal(rig, plan_id)
        assert {(e.target["principal_id"], e.target["role_id"]) for e in entries} == first
        assert {e.status for e in entries} == {"pending"}, "a stale worker recorded an outcome"
        assert {i.state for i in work_items(rig, plan_id)} <= {"pending", "skipped"}
        assert lease_row(rig, plan_id).holder == "worker-b"

        await tick(worker_b)
        view = rig.view(plan_id)
        assert view.row.state == "completed"
        items = work_items(rig, plan_id)
        made_eligible = {
            (i.principal_id, i.role_definition_id)
            for i in items
            if i.state in {"done", "kept_active"}
        }
        # worker-b found worker-a's answered-but-unrecorded creations and did not send them again.
        sent = recorder.sent(ELIGIBILITY_REQUESTS)
        assert sorted(sent) == sorted(first)
        writes = await schedule_writes(rig)
        assert writes[(ELIGIBILITY_REQUESTS, 201)] == len(made_eligible)
        assert writes[(ELIGIBILITY_REQUESTS, 400)] == 0
        timeline = await rig.sim("GET", f"/_sim/timeline?since_seq={seq}")
        converted = {(i.principal_id, i.role_definition_id) for i in items if i.state == "done"}
        assert converted_once(timeline, converted) == []
        for entry in journal(rig, plan_id):
            if (entry.target["principal_id"], entry.target["role_id"]) in first and (
                entry.operation == "create_eligibility"
            ):
                assert entry.status == "applied"
                assert (entry.outcome or {}).get("verified") is True
