"""Exact rollback against the simulated tenant (invariant 4), without lockout (invariant 1):
one phase at a time, newest first, drift left alone and reported, rules that block re-creating
permanent Active restored first (reference §6), and under transient faults."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from app.db.models import JournalEntry, Tenant, Transition, WorkItem
from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.db.session import unit_of_work
from app.domain.journal import Operation, rule_key
from app.domain.roles import USER_ADMINISTRATOR, role_name
from app.domain.rules import EXPIRATION_ADMIN_ASSIGNMENT
from app.domain.tenant import GraphLimits, TenantAuth
from app.engine import tick as tick_module
from app.engine.actions import start
from app.engine.baseline_diff import NEW_STANDING_ACCESS
from app.engine.context import EngineContext
from app.engine.tick import tick
from app.graph.auth import build_auth
from app.graph.client import GraphClient
from app.graph.errors import GraphError
from app.graph.factory import GraphClientFactory
from app.graph.models import parse_policy_rule
from app.services import plans, tenants
from app.services.plans import PhaseView, PlanView
from app.settings import GraphSettings
from tests.engine.conftest import Rig
from tests.engine.helpers import eligible, no_lockout, permanent_active, rules_of
from tests.factories import plan_data

TARGETS = [r["id"] for r in plan_data()["roles"]]
Key = tuple[str, str]  # (principal, role)


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (150, 24)


@pytest.fixture
def graph_settings() -> GraphSettings:
    # Backoff between retries of a failed Graph call stays short; Retry-After is still honoured.
    return GraphSettings(
        request_timeout_seconds=5,
        total_deadline_seconds=60,
        max_attempts=10,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.1,
    )


def two_wave_spec() -> dict[str, Any]:
    """The pilot (settings, then the IT/platform team) and, a day later, everyone else."""
    data = plan_data()
    pilot = data["phases"][0]
    data["name"] = "two-waves"
    data["phases"] = [
        {**pilot, "starts_after": "PT0S", "steps": pilot["steps"][:2]},
        {
            "key": "wave-2",
            "title": "Every remaining admin role holder",
            "starts_after": "P1D",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        },
    ]
    return data


# -- reading ---------------------------------------------------------------------------------


def phase_of(view: PlanView, key: str) -> PhaseView:
    return next(p for p in view.phases if p.row.key == key)


def history(rig: Rig, plan_id: str) -> list[Transition]:
    with rig.session_factory() as session:
        return list(plans.history(session, plan_id))


def journal(rig: Rig, plan_id: str) -> list[JournalEntry]:
    with rig.session_factory() as session:
        return list(JournalRepository(session).list_for_plan(plan_id))


def work_items(rig: Rig, plan_id: str, phase_key: str) -> list[WorkItem]:
    with rig.session_factory() as session:
        return list(WorkItemRepository(session).list_items(plan_id, phase_key=phase_key))


def keys_in(items: list[WorkItem], *states: str) -> set[Key]:
    return {(i.principal_id, i.role_definition_id) for i in items if i.state in states}


def changes(timeline: list[dict[str, Any]], kind: str, change: str) -> list[Key]:
    return [
        (c["principal_id"], c["role_definition_id"])
        for c in timeline
        if c["kind"] == kind and c["change"] == change
    ]


def last_seq(timeline: list[dict[str, Any]]) -> int:
    return max((c["seq"] for c in timeline), default=0)


def holders(state: dict[str, Any]) -> set[Key]:
    return {(p, r) for p, r, _ in permanent_active(state)}


def configure_limits(rig: Rig, **limits: Any) -> None:
    # The product paces its writes far below what the simulated tenant allows, which would only
    # make these tests slow.
    with unit_of_work(rig.session_factory) as session:
        tenants.update_tenant(
            session,
            tenant_id=rig.tenant_id,
            changes={
                "graph_limits": {
                    "min_change_interval_seconds": 0,
                    "write_quota": 100_000,
                    **limits,
                }
            },
            box=rig.ectx.secret_box,
            now=rig.clock.now(),
        )


async def drive(
    rig: Rig, ectx: EngineContext, plan_id: str, until: set[str], max_ticks: int = 20
) -> PlanView:
    for _ in range(max_ticks):
        view = rig.view(plan_id)
        if view.row.state in until:
            return view
        await tick(ectx)
        rig.clock.advance(days=1)
    view = rig.view(plan_id)
    raise AssertionError(
        f"plan stuck in {view.row.state} ({view.row.status_reason}): "
        + ", ".join(f"{p.row.key}={p.row.state} ({p.row.status_reason})" for p in view.phases)
    )


async def graph(rig: Rig, method: str, path: str, **kwargs: Any) -> Any:
    """A Graph call to the simulated tenant made by someone other than the plan."""
    return await rig.sim(
        method, "/v1.0" + path, headers={"Authorization": "Bearer someone-else"}, **kwargs
    )


# -- a Graph transport that keeps the order of every write ----------------------------------


@dataclass
class Write:
    method: str
    path: str
    actions: list[str]  # for a $batch: "<collection>:<action>" per item


@dataclass
class WriteLog(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    writes: list[Write] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            actions = []
            if request.url.path.endswith("/$batch"):
                for item in json.loads(request.content)["requests"]:
                    collection = item["url"].rsplit("/", 1)[-1]
                    actions.append(f"{collection}:{(item.get('body') or {}).get('action')}")
            self.writes.append(Write(request.method, request.url.path, actions))
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def logged(
    rig: Rig, graph_settings: GraphSettings
) -> AsyncIterator[tuple[EngineContext, WriteLog]]:
    log = WriteLog(httpx.ASGITransport(app=rig.sim_app))
    factory = GraphClientFactory(graph_settings, transport_for=lambda _url: log)
    yield replace(rig.ectx, graph_factory=factory), log
    await factory.aclose_all()


# -- 1. one phase ------------------------------------------------------------------------------


class TestPhaseRollback:
    async def test_rolling_back_one_phase_undoes_only_it_newest_first(self, rig: Rig) -> None:
        before = await rig.sim("GET", "/_sim/state")
        # One chunk of two items at a time: the order of undo is visible in the timeline.
        configure_limits(rig, max_concurrency=1)
        ectx = replace(rig.ectx, batch_size=2)
        plan_id = rig.create_plan(spec=two_wave_spec())
        rig.act(plan_id, "start")
        await tick(ectx)
        assert phase_of(rig.view(plan_id), "pilot").row.state == "completed"
        after_pilot = await rig.sim("GET", "/_sim/state")
        pilot_seq = last_seq(await rig.sim("GET", "/_sim/timeline"))

        await drive(rig, ectx, plan_id, {"completed", "failed"})
        assert rig.view(plan_id).row.state == "completed"
        timeline = await rig.sim("GET", "/_sim/timeline")
        wave_removed = changes([c for c in timeline if c["seq"] > pilot_seq], "active", "removed")
        wave_items = work_items(rig, plan_id, "wave-2")
        assert set(wave_removed) == keys_in(wave_items, "done")
        assert len(wave_removed) > 10
        pilot_done = keys_in(work_items(rig, plan_id, "pilot"), "done")
        assert len(pilot_done) == 3
        done_seq = last_seq(timeline)

        view = rig.act(plan_id, "rollback", phase="wave-2", reason="wave 2 overwhelmed the desk")
        assert (view.row.state, view.row.rollback_target) == ("rolling_back", "wave-2")
        view = await drive(rig, ectx, plan_id, {"paused", "failed", "rolled_back"})

        assert view.row.state == "paused", view.row.status_reason
        assert view.row.rollback_target is None
        assert {p.row.key: p.row.state for p in view.phases} == {
            "pilot": "completed",
            "wave-2": "rolled_back",
        }
        restored = await rig.sim("GET", "/_sim/state")
        assert permanent_active(restored) == permanent_active(after_pilot)
        assert eligible(restored) == eligible(after_pilot)
        for role in TARGETS:
            assert rules_of(restored, role) == rules_of(after_pilot, role), role_name(role)
        assert rules_of(restored, TARGETS[0]) != rules_of(before, TARGETS[0])
        assert pilot_done <= {(p, r) for p, r, _ in eligible(restored)}
        assert not pilot_done & holders(restored)

        undo = [c for c in await rig.sim("GET", "/_sim/timeline") if c["seq"] > done_seq]
        assert changes(undo, "active", "added") == list(reversed(wave_removed))
        made_eligible = keys_in(wave_items, "done", "kept_active")
        assert set(changes(undo, "eligible", "removed")) == made_eligible
        assert not [c for c in undo if (c["principal_id"], c["role_definition_id"]) in pilot_done]
        position = {
            (c["principal_id"], c["role_definition_id"], c["kind"], c["change"]): i
            for i, c in enumerate(undo)
        }
        for principal, role in wave_removed:
            assert (
                position[(principal, role, "active", "added")]
                < position[(principal, role, "eligible", "removed")]
            ), f"{principal} / {role_name(role)} lost its Eligible before its Active was back"

        entries = journal(rig, plan_id)
        reverses = [e.reverses_id for e in entries if e.operation == Operation.restore_active]
        assert len(reverses) == len(wave_removed)
        assert reverses == sorted(reverses, key=lambda i: i or 0, reverse=True)
        assert {e.phase_key for e in entries if e.reverses_id is not None} == {"wave-2"}
        assert {i.state for i in work_items(rig, plan_id, "wave-2")} <= {"reverted", "skipped"}
        assert keys_in(work_items(rig, plan_id, "pilot"), "done") == pilot_done
        events = [(h.event, h.phase_key) for h in history(rig, plan_id)]
        assert events[-3:] == [
            ("rollback", None),
            ("roll_back_phase", "wave-2"),
            ("partial_rollback_finished", None),
        ]


# -- 2. drift ----------------------------------------------------------------------------------


class TestDrift:
    async def test_changes_made_outside_the_plan_are_reported_and_left_alone(
        self, rig: Rig
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(spec=two_wave_spec())
        # Through the engine's start, so the plan has its baseline.
        await start(rig.ectx, plan_id=plan_id, actor="tester", reason=None, expected_version=None)
        await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        assert rig.view(plan_id).row.state == "completed"
        converted = sorted(keys_in(work_items(rig, plan_id, "wave-2"), "done"))
        (regained, regained_role), (dropped, dropped_role) = converted[2], converted[5]
        converted_seq = last_seq(await rig.sim("GET", "/_sim/timeline"))

        # Someone gives a converted admin standing access back, directly in Entra.
        given_back = await rig.sim(
            "POST",
            "/_sim/assignments",
            json={"principal_id": regained, "role_definition_id": regained_role},
        )
        # Someone removes another converted admin's Eligible assignment through PIM.
        await graph(
            rig,
            "POST",
            "/roleManagement/directory/roleEligibilityScheduleRequests",
            json={
                "action": "adminRemove",
                "principalId": dropped,
                "roleDefinitionId": dropped_role,
                "directoryScopeId": "/",
                "justification": "left the team",
            },
        )
        # Someone makes a brand-new admin, a user the plan never saw.
        assigned = {a["principal_id"] for a in before["active_assignments"]}
        newcomer, newcomer_upn = next(
            (u["id"], u["user_principal_name"]) for u in before["users"] if u["id"] not in assigned
        )
        newcomer_role = TARGETS[-2]
        added = await rig.sim(
            "POST",
            "/_sim/assignments",
            json={"principal_id": newcomer, "role_definition_id": newcomer_role},
        )

        rig.act(plan_id, "rollback", reason="undo the rollout")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back", view.row.status_reason

        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before) | {
            (newcomer, newcomer_role, "/")
        }
        assert eligible(after) == eligible(before)
        for role in TARGETS:
            assert rules_of(after, role) == rules_of(before, role), role_name(role)
        actives = {
            (a["principal_id"], a["role_definition_id"]): a["schedule_id"]
            for a in after["active_assignments"]
        }
        # Left alone: the very assignments others made are still there, not re-created.
        assert actives[(regained, regained_role)] == given_back["schedule_id"]
        assert actives[(newcomer, newcomer_role)] == added["schedule_id"]
        since = await rig.sim("GET", f"/_sim/timeline?since_seq={converted_seq}")
        assert changes(since, "active", "added").count((regained, regained_role)) == 1

        wave = phase_of(view, "wave-2")
        assert wave.row.status_reason is not None
        assert "drift left alone" in wave.row.status_reason
        assert (
            f"{dropped} / {role_name(dropped_role)}: "
            "the Eligible assignment was removed outside the plan"
        ) in wave.row.status_reason
        assert (
            f"{regained} / {role_name(regained_role)}: "
            "the Active assignment was given back outside the plan since; left as it is"
        ) in wave.row.status_reason
        # The newcomer isn't in the journal, but the final report still names them against
        # the baseline, so every difference from it is on record.
        assert history(rig, plan_id)[-1].reason == (
            "rollback finished (drift left alone: 3); not in the baseline: "
            f"{newcomer_upn} / {role_name(newcomer_role)}: {NEW_STANDING_ACCESS}"
        )
        settled = {
            (e.operation, e.target.get("principal_id"), e.target["role_id"]): e.status
            for e in journal(rig, plan_id)
        }
        assert {k for k, status in settled.items() if status == "drift"} == {
            (Operation.create_eligibility.value, dropped, dropped_role)
        }
        # Nothing to undo for the Active assignment someone else gave back.
        assert settled[(Operation.remove_active.value, regained, regained_role)] == "not_needed"

    async def test_many_newcomers_are_counted_past_the_few_named(self, rig: Rig) -> None:
        plan_id = rig.create_plan(spec=two_wave_spec())
        await start(rig.ectx, plan_id=plan_id, actor="tester", reason=None, expected_version=None)
        await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        state = await rig.sim("GET", "/_sim/state")
        assigned = {a["principal_id"] for a in state["active_assignments"]}
        newcomers = [u for u in state["users"] if u["id"] not in assigned][:7]
        for user in newcomers:
            await rig.sim(
                "POST",
                "/_sim/assignments",
                json={"principal_id": user["id"], "role_definition_id": TARGETS[0]},
            )

        rig.act(plan_id, "rollback", reason="undo the rollout")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back", view.row.status_reason

        reason = history(rig, plan_id)[-1].reason or ""
        assert reason.startswith("rollback finished (drift left alone: 7); not in the baseline: ")
        assert reason.endswith("; and 2 more")
        named = [u for u in newcomers if u["user_principal_name"] in reason]
        assert len(named) == 5

    async def test_an_unreadable_tenant_is_said_and_the_rollback_still_finishes(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        plan_id = rig.create_plan(spec=two_wave_spec())
        await start(rig.ectx, plan_id=plan_id, actor="tester", reason=None, expected_version=None)
        await drive(rig, rig.ectx, plan_id, {"completed", "failed"})

        async def unreadable(*_args: Any, **_kwargs: Any) -> list[str]:
            raise GraphError("the service is unavailable", status=503, code="serviceUnavailable")

        monkeypatch.setattr(tick_module, "standing_access_since_baseline", unreadable)
        rig.act(plan_id, "rollback", reason="undo the rollout")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})

        # What the journal knows is restored either way; the missing check is said, not hidden.
        assert view.row.state == "rolled_back", view.row.status_reason
        reason = history(rig, plan_id)[-1].reason or ""
        assert reason.startswith("rollback finished; could not check for standing access added")
        assert "the service is unavailable" in reason


# -- 3. order of reference §6 ------------------------------------------------------------------


class TestRollbackOrder:
    async def test_a_rule_that_blocks_permanent_active_is_restored_before_any_is_recreated(
        self, rig: Rig, logged: tuple[EngineContext, WriteLog]
    ) -> None:
        ectx, log = logged
        before = await rig.sim("GET", "/_sim/state")
        data = plan_data()
        data["name"] = "settings-then-convert"
        pilot = data["phases"][0]
        data["phases"] = [
            {
                "key": "convert",
                "title": "Settings, then everyone",
                "starts_after": "PT0S",
                "steps": [
                    pilot["steps"][0],
                    {"kind": "convert_cohort", "cohort": {"remaining": True}},
                ],
            }
        ]
        plan_id = rig.create_plan(spec=data)

        # The phase's settings step also forbids permanent Active User Administrators (no
        # shipped step does; this is the journal entry and tenant change such a step makes).
        with rig.session_factory() as session:
            tenant = session.get(Tenant, rig.tenant_id)
            assert tenant is not None
        client = await rig.ectx.client_for(tenant)
        policy_id = (await client.get_policy_assignment(USER_ADMINISTRATOR)).policy_id
        prior = (
            await client.get_policy_rule(policy_id, EXPIRATION_ADMIN_ASSIGNMENT)
        ).to_patch_body()
        desired = {**prior, "isExpirationRequired": True, "maximumDuration": "P180D"}
        await client.update_policy_rule(policy_id, parse_policy_rule(desired))
        with unit_of_work(rig.session_factory) as session:
            JournalRepository(session).add(
                JournalEntry(
                    plan_id=plan_id,
                    phase_key="convert",
                    step_index=0,
                    operation=Operation.update_policy_rule.value,
                    idempotency_key=rule_key(
                        plan_id, "convert", 0, USER_ADMINISTRATOR, EXPIRATION_ADMIN_ASSIGNMENT
                    ),
                    target={
                        "role_id": USER_ADMINISTRATOR,
                        "policy_id": policy_id,
                        "rule_id": EXPIRATION_ADMIN_ASSIGNMENT,
                    },
                    prior_state=prior,
                    desired_state=desired,
                    status="applied",
                    fencing_token=0,
                    intent_at=rig.clock.now(),
                    completed_at=rig.clock.now(),
                )
            )
        rig.act(plan_id, "start")
        await drive(rig, ectx, plan_id, {"completed", "failed"})
        assert rig.view(plan_id).row.state == "completed"
        user_admins = keys_in(work_items(rig, plan_id, "convert"), "done")
        assert {r for _, r in user_admins} >= {USER_ADMINISTRATOR}
        # While the rule holds, the tenant refuses a permanent Active User Administrator.
        refused = await rig.sim_http.post(
            "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests",
            headers={"Authorization": "Bearer someone-else"},
            json={
                "action": "adminAssign",
                "principalId": next(p for p, r in user_admins if r == USER_ADMINISTRATOR),
                "roleDefinitionId": USER_ADMINISTRATOR,
                "directoryScopeId": "/",
                "isValidationOnly": True,
                "scheduleInfo": {"expiration": {"type": "noExpiration"}},
            },
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "RoleAssignmentRequestPolicyValidationFailed"

        start = len(log.writes)
        rig.act(plan_id, "rollback", reason="undo")
        view = await drive(rig, ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back", view.row.status_reason
        undo = log.writes[start:]
        rule_restored = next(
            i
            for i, w in enumerate(undo)
            if w.method == "PATCH" and w.path.endswith(f"/rules/{EXPIRATION_ADMIN_ASSIGNMENT}")
        )
        first_recreate = next(
            i
            for i, w in enumerate(undo)
            if "roleAssignmentScheduleRequests:adminAssign" in w.actions
        )
        other_rules = [
            i
            for i, w in enumerate(undo)
            if w.method == "PATCH" and not w.path.endswith(f"/rules/{EXPIRATION_ADMIN_ASSIGNMENT}")
        ]
        assert rule_restored < first_recreate
        # Rules that do not block re-creation keep the newest-first order: after the items.
        assert other_rules
        assert min(other_rules) > first_recreate
        entries = journal(rig, plan_id)
        restores = [e.id or 0 for e in entries if e.operation == Operation.restore_active]
        rule_entry = next(
            e
            for e in entries
            if e.operation == Operation.restore_policy_rule
            and e.target["rule_id"] == EXPIRATION_ADMIN_ASSIGNMENT
        )
        assert (rule_entry.id or 0) < min(restores)
        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before)
        assert eligible(after) == eligible(before)
        assert after["policies"][USER_ADMINISTRATOR] == before["policies"][USER_ADMINISTRATOR] | {
            "last_modified": after["policies"][USER_ADMINISTRATOR]["last_modified"]
        }


# -- 4. no lockout -----------------------------------------------------------------------------


class TestNoLockout:
    async def test_every_converted_holder_holds_each_role_throughout_the_rollback(
        self, rig: Rig
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(spec=two_wave_spec())
        rig.act(plan_id, "start")
        await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        assert rig.view(plan_id).row.state == "completed"
        converted = keys_in(work_items(rig, plan_id, "pilot"), "done") | keys_in(
            work_items(rig, plan_id, "wave-2"), "done"
        )
        pilot_done = keys_in(work_items(rig, plan_id, "pilot"), "done")
        seq = last_seq(await rig.sim("GET", "/_sim/timeline"))

        rig.act(plan_id, "rollback", reason="undo the rollout")
        view = await drive(rig, rig.ectx, plan_id, {"rolled_back", "failed"})
        assert view.row.state == "rolled_back", view.row.status_reason

        timeline = await rig.sim("GET", "/_sim/timeline")
        assert no_lockout(timeline, holders(before)) == []
        undo = [c for c in timeline if c["seq"] > seq]
        assert set(changes(undo, "active", "added")) == converted
        assert set(changes(undo, "eligible", "removed")) >= converted
        # Newest first across phases: the second wave is undone before the pilot.
        restored = changes(undo, "active", "added")
        last_wave = max(i for i, k in enumerate(restored) if k not in pilot_done)
        first_pilot = min(i for i, k in enumerate(restored) if k in pilot_done)
        assert last_wave < first_pilot
        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before)
        assert eligible(after) == eligible(before)


# -- 5. transient faults -----------------------------------------------------------------------


class BriefWaits(GraphClientFactory):
    """Clients that wait at most 50 ms, whatever Retry-After or backoff asks
    (the simulated tenant asks up to 5 s after a 503), so a flaky rollback runs in seconds."""

    def __init__(self, settings: GraphSettings, app: Any) -> None:
        super().__init__(settings)
        self._graph_settings = settings
        self._app = app
        self._made: dict[str, tuple[GraphLimits, GraphClient, Any]] = {}

    async def get(
        self, tenant_key: str, base_url: str, auth: TenantAuth, limits: GraphLimits
    ) -> GraphClient:
        made = self._made.get(tenant_key)
        if made is None or made[0] != limits:
            token_auth = build_auth(auth, base_url)
            client = GraphClient(
                base_url,
                auth=token_auth,
                transport=httpx.ASGITransport(app=self._app),
                settings=self._graph_settings,
                limits=limits,
                sleeper=_brief_sleep,
            )
            made = self._made[tenant_key] = (limits, client, token_auth)
        return made[1]

    async def aclose_all(self) -> None:
        for _, client, token_auth in self._made.values():
            await client.aclose()
            await token_auth.aclose()
        self._made.clear()


async def _brief_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.05))


class TestRollbackUnderFaults:
    async def test_rollback_rides_out_5xx_and_429_and_restores_the_baseline(
        self, rig: Rig, graph_settings: GraphSettings
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id = rig.create_plan(spec=two_wave_spec())
        rig.act(plan_id, "start")
        await drive(rig, rig.ectx, plan_id, {"completed", "failed"})
        assert rig.view(plan_id).row.state == "completed"
        seq = last_seq(await rig.sim("GET", "/_sim/timeline"))

        # A fifth of the calls fail with 500/503/504, and the tenant takes ten writes at a time,
        # fewer than one batch of twenty: 429s follow however fast the machine is.
        await rig.sim(
            "PUT",
            "/_sim/faults",
            json={"fault_rate": 0.2, "seed": 5, "write_quota": 10, "write_window_seconds": 0.05},
        )
        factory = BriefWaits(graph_settings, rig.sim_app)
        ectx = replace(rig.ectx, graph_factory=factory)
        rig.act(plan_id, "rollback", reason="undo under a flaky tenant")
        try:
            view = await drive(rig, ectx, plan_id, {"rolled_back"}, max_ticks=30)
        finally:
            await factory.aclose_all()
        assert view.row.state == "rolled_back"
        assert "rollback_failed" not in [h.event for h in history(rig, plan_id)]

        stats = await rig.sim("GET", "/_sim/requests")
        assert stats["faulted"] > 3
        assert stats["throttled"] > 0
        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before)
        assert eligible(after) == eligible(before)
        for role in TARGETS:
            assert rules_of(after, role) == rules_of(before, role), role_name(role)
        timeline = await rig.sim("GET", "/_sim/timeline")
        assert no_lockout(timeline, holders(before)) == []
        added = Counter(changes([c for c in timeline if c["seq"] > seq], "active", "added"))
        assert max(added.values()) == 1, "an Active assignment was re-created twice"
