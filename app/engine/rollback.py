"""Exact rollback (invariant 4): undo what the plan journaled, newest first, drift left alone.

Per item the order keeps invariant 1 in reverse: the Active assignment is re-created and
confirmed before the Eligible one the plan created is removed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session

from app.db.models import JournalEntry, WorkItem
from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.domain.journal import EntryStatus, Operation, rollback_key
from app.domain.progress import WorkItemState
from app.domain.roles import role_name
from app.domain.rollback import (
    Verdict,
    decide_access_review,
    decide_create_eligibility,
    decide_policy_rule,
    decide_remove_active,
    rollback_order,
)
from app.engine.context import EngineContext, Lease, fenced
from app.engine.journal import mark, open_intent, record_outcome
from app.engine.lookups import Target, assigned_instances, eligibility_schedules
from app.engine.transient import ENGINE_ATTEMPTS, describe, is_transient
from app.graph.client import GraphClient
from app.graph.errors import GraphError, GraphNotFoundError
from app.graph.models import (
    ExpirationCreate,
    ExpirationType,
    ScheduleInfoCreate,
    ScheduleRequest,
    ScheduleRequestAction,
    ScheduleRequestCreate,
    parse_policy_rule,
)
from app.logging import get_logger

log = get_logger(__name__)

ITEM_OPERATIONS = {Operation.create_eligibility.value, Operation.remove_active.value}
RESTORE_JUSTIFICATION = "PIM rollout rollback: restoring the standing assignment the plan removed"
REMOVE_JUSTIFICATION = "PIM rollout rollback: removing the eligible assignment the plan created"


@dataclass
class UndoResult:
    done: bool
    waiting: str | None = None
    failed: str | None = None
    drift: list[str] = field(default_factory=list)


@dataclass
class _ItemUndo:
    target: Target
    newest: int
    remove_active: JournalEntry | None = None
    create_eligibility: JournalEntry | None = None


class PhaseUndo:
    def __init__(
        self,
        ectx: EngineContext,
        lease: Lease,
        client: GraphClient,
        *,
        plan_id: str,
        phase_key: str,
        min_change_interval: timedelta,
        concurrency: int,
    ) -> None:
        self.ectx = ectx
        self.lease = lease
        self.client = client
        self.plan_id = plan_id
        self.phase_key = phase_key
        self.min_change = min_change_interval
        self.concurrency = concurrency
        self.result = UndoResult(done=True)
        self.last_error: GraphError | str | None = None
        self.settled: set[int] = set()  # originals decided in this run; a retry skips them

    def _fail(self, message: str, error: GraphError | str | None = None) -> None:
        self.result.failed = message
        self.last_error = error if error is not None else message

    def _settle(self, session: Any, entry_id: int, status: EntryStatus) -> None:
        mark(session, entry_id, status)
        self.settled.add(entry_id)

    async def _retrying(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run an undo action; a transient Graph failure is retried a few times before it
        fails the rollback (a failed rollback leaves the plan failed, to be rolled back again)."""
        for attempt in range(ENGINE_ATTEMPTS):
            if attempt:
                await self.ectx.sleeper(min(2.0**attempt, 30.0))
            self.result.failed = None
            self.last_error = None
            await action()
            if self.result.failed is None or not is_transient(self.last_error):
                return
            log.warning("engine.rollback.retry", reason=self.result.failed)

    async def run(self) -> UndoResult:
        def journal_entries(session: Session) -> list[JournalEntry]:
            return list(
                JournalRepository(session).list_for_plan(
                    self.plan_id,
                    phase_key=self.phase_key,
                    # Failed and pending entries too: a change whose answer was lost may have
                    # landed. Every decision below reads the live state first.
                    statuses=[
                        EntryStatus.applied.value,
                        EntryStatus.pending.value,
                        EntryStatus.failed.value,
                    ],
                )
            )

        entries = await self.ectx.db.read(journal_entries)
        ordered = rollback_order(entries)
        index = 0
        while index < len(ordered):
            entry = ordered[index]
            if entry.operation in ITEM_OPERATIONS:
                run: list[JournalEntry] = []
                while index < len(ordered) and ordered[index].operation in ITEM_OPERATIONS:
                    run.append(ordered[index])
                    index += 1
                await self._undo_items(run)
            else:
                index += 1
                await self._retrying(partial(self._undo_other, entry))
            if self.result.failed:
                self.result.done = False
                return self.result
        if self.result.waiting:
            self.result.done = False
        return self.result

    async def _undo_other(self, entry: JournalEntry) -> None:
        if entry.operation == Operation.update_policy_rule.value:
            await self._undo_rule(entry)
        elif entry.operation == Operation.create_access_review.value:
            await self._undo_review(entry)

    # -- items -----------------------------------------------------------------------------

    async def _undo_items(self, entries: list[JournalEntry]) -> None:
        items: dict[Target, _ItemUndo] = {}
        for entry in entries:
            t = entry.target
            target = Target(t["principal_id"], t["role_id"], t["scope"])
            undo = items.setdefault(target, _ItemUndo(target, entry.id or 0))
            undo.newest = max(undo.newest, entry.id or 0)
            if entry.operation == Operation.remove_active.value:
                undo.remove_active = entry
            else:
                undo.create_eligibility = entry
        ordered = sorted(items.values(), key=lambda u: u.newest, reverse=True)
        size = self.ectx.batch_size
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            await self._retrying(partial(self._restore_active, chunk))
            if self.result.failed:
                return
            await self._retrying(partial(self._remove_eligible, chunk))
            if self.result.failed:
                return

    async def _restore_active(self, chunk: list[_ItemUndo]) -> None:
        needing = [
            u
            for u in chunk
            if u.remove_active is not None and u.remove_active.id not in self.settled
        ]
        if not needing:
            return
        live = await assigned_instances(self.client, [u.target for u in needing])
        to_create: list[tuple[_ItemUndo, JournalEntry, int]] = []
        now = self.ectx.clock.now()

        def open_restores(session: Session) -> None:
            for undo in needing:
                original = undo.remove_active
                assert original is not None
                assert original.id is not None
                value = live[undo.target]
                if isinstance(value, GraphError):
                    self._fail(f"reading {_who(undo)} failed: {describe(value)}", value)
                    return
                decision = decide_remove_active(active_now=value is not None)
                if decision.verdict is Verdict.not_needed:
                    if _given_back_outside(session, original):
                        self.result.drift.append(
                            f"{_who(undo)}: the Active assignment was given back outside the "
                            "plan since; left as it is"
                        )
                    self._settle(session, original.id, EntryStatus.not_needed)
                    continue
                entry, _ = open_intent(
                    session,
                    key=rollback_key(original.idempotency_key),
                    plan_id=self.plan_id,
                    phase_key=self.phase_key,
                    step_index=original.step_index,
                    operation=Operation.restore_active,
                    target=original.target,
                    prior_state={"active": False},
                    desired_state={"active": True, "permanent": True},
                    fencing_token=self.lease.token,
                    now=now,
                    reverses_id=original.id,
                )
                assert entry.id is not None
                to_create.append((undo, original, entry.id))

        await fenced(self.ectx, self.lease, open_restores)
        if self.result.failed or not to_create:
            return
        requests = [
            ScheduleRequestCreate(
                action=ScheduleRequestAction.admin_assign,
                principal_id=u.target.principal_id,
                role_definition_id=u.target.role_id,
                directory_scope_id=u.target.scope,
                justification=RESTORE_JUSTIFICATION,
                schedule_info=ScheduleInfoCreate(
                    expiration=ExpirationCreate(type=ExpirationType.no_expiration)
                ),
            )
            for u, _, _ in to_create
        ]
        answers = await _send(self.client, "assignment", requests)
        confirm = await assigned_instances(self.client, [u.target for u, _, _ in to_create])

        def record_restores(session: Session) -> None:
            for (undo, original, entry_id), answer in zip(to_create, answers, strict=True):
                assert original.id is not None
                present = confirm[undo.target]
                if isinstance(present, str):
                    record_outcome(
                        session,
                        entry_id,
                        status=EntryStatus.applied,
                        now=self.ectx.clock.now(),
                        outcome={"assignment_id": present},
                        request_id=answer.id if isinstance(answer, ScheduleRequest) else None,
                    )
                    self._settle(session, original.id, EntryStatus.reverted)
                    continue
                error = _first_error(answer, present)
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.failed,
                    now=self.ectx.clock.now(),
                    error=error or "the Active assignment is not back",
                )
                self._fail(
                    f"re-creating the Active assignment of {_who(undo)} failed: "
                    + (describe(error) if error else "it is not there"),
                    error,
                )

        await fenced(self.ectx, self.lease, record_restores)

    async def _remove_eligible(self, chunk: list[_ItemUndo]) -> None:
        needing = [
            u
            for u in chunk
            if u.create_eligibility is not None and u.create_eligibility.id not in self.settled
        ]
        if not needing:
            return
        now = self.ectx.clock.now()
        ready: list[_ItemUndo] = []
        for undo in needing:
            created = undo.create_eligibility
            assert created is not None
            not_before = (created.completed_at or created.intent_at) + self.min_change
            if now < not_before:
                self.result.waiting = (
                    "waiting for Graph's minimum interval between changes to one assignment "
                    f"(the first can be undone at {not_before:%H:%M:%S} UTC)"
                )
                continue
            ready.append(undo)
        if not ready:
            return
        active = await assigned_instances(self.client, [u.target for u in ready])
        eligible = await eligibility_schedules(self.client, [u.target for u in ready])
        to_remove: list[tuple[_ItemUndo, JournalEntry, int]] = []

        def open_removals(session: Session) -> None:
            for undo in ready:
                created = undo.create_eligibility
                assert created is not None
                assert created.id is not None
                present, live = active[undo.target], eligible[undo.target]
                for value in (present, live):
                    if isinstance(value, GraphError):
                        self._fail(f"reading {_who(undo)} failed: {describe(value)}", value)
                        return
                if present is None:
                    # Never remove the last way in: the Active one must be back first.
                    self._fail(f"{_who(undo)} has no Active assignment, so its Eligible one stays")
                    return
                assert not isinstance(live, GraphError)
                if live is None and created.status != EntryStatus.applied.value:
                    # It never landed (the attempt failed or was cut short): nothing to undo.
                    self._settle(session, created.id, EntryStatus.not_needed)
                    self._item_state(session, undo, WorkItemState.reverted)
                    continue
                ours = (created.outcome or {}).get("eligible_schedule_id")
                decision = decide_create_eligibility(
                    live_schedule_id=live, created_schedule_id=ours
                )
                if decision.verdict is Verdict.drift:
                    self._settle(session, created.id, EntryStatus.drift)
                    self.result.drift.append(f"{_who(undo)}: {decision.reason}")
                    self._item_state(session, undo, WorkItemState.reverted)
                    continue
                entry, _ = open_intent(
                    session,
                    key=rollback_key(created.idempotency_key),
                    plan_id=self.plan_id,
                    phase_key=self.phase_key,
                    step_index=created.step_index,
                    operation=Operation.remove_eligibility,
                    target=created.target,
                    prior_state={"eligible_schedule_id": live},
                    desired_state={"eligible": False},
                    fencing_token=self.lease.token,
                    now=now,
                    reverses_id=created.id,
                )
                assert entry.id is not None
                to_remove.append((undo, created, entry.id))

        await fenced(self.ectx, self.lease, open_removals)
        if self.result.failed or not to_remove:
            return
        requests = [
            ScheduleRequestCreate(
                action=ScheduleRequestAction.admin_remove,
                principal_id=u.target.principal_id,
                role_definition_id=u.target.role_id,
                directory_scope_id=u.target.scope,
                justification=REMOVE_JUSTIFICATION,
            )
            for u, _, _ in to_remove
        ]
        answers = await _send(self.client, "eligibility", requests)
        gone = await eligibility_schedules(self.client, [u.target for u, _, _ in to_remove])

        def record_removals(session: Session) -> None:
            for (undo, created, entry_id), answer in zip(to_remove, answers, strict=True):
                assert created.id is not None
                if gone[undo.target] is None:
                    record_outcome(
                        session,
                        entry_id,
                        status=EntryStatus.applied,
                        now=self.ectx.clock.now(),
                        request_id=answer.id if isinstance(answer, ScheduleRequest) else None,
                    )
                    self._settle(session, created.id, EntryStatus.reverted)
                    self._item_state(session, undo, WorkItemState.reverted)
                    continue
                error = _first_error(answer, gone[undo.target])
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.failed,
                    now=self.ectx.clock.now(),
                    error=error or "the Eligible assignment is still there",
                )
                if error is not None and error.code == "RoleAssignmentRecentlyChanged":
                    self.result.waiting = f"Graph asks to wait before changing {_who(undo)} again"
                    continue
                self._fail(
                    f"removing the Eligible assignment of {_who(undo)} failed: "
                    + (describe(error) if error else "it is still there"),
                    error,
                )

        await fenced(self.ectx, self.lease, record_removals)

    def _item_state(self, session: Any, undo: _ItemUndo, state: WorkItemState) -> None:
        for item in WorkItemRepository(session).list_items(
            self.plan_id, phase_key=self.phase_key, role_definition_id=undo.target.role_id
        ):
            if (
                item.principal_id == undo.target.principal_id
                and item.directory_scope_id == undo.target.scope
            ):
                _set_state(session, item, state, self.ectx.clock.now())

    # -- rules and reviews -------------------------------------------------------------------

    async def _undo_rule(self, original: JournalEntry) -> None:
        assert original.id is not None
        original_id = original.id
        if original.id in self.settled:
            return
        policy_id = original.target["policy_id"]
        rule_id = original.target["rule_id"]
        role = role_name(original.target["role_id"])
        prior = original.prior_state or {}
        desired = original.desired_state or {}
        try:
            live = (await self.client.get_policy_rule(policy_id, rule_id)).to_patch_body()
        except GraphError as exc:
            self._fail(f"reading {rule_id} of {role} failed: {describe(exc)}", exc)
            return
        decision = decide_policy_rule(prior=prior, desired=desired, live=live)
        if decision.verdict is not Verdict.revert:
            drift = decision.verdict is Verdict.drift

            def settle_rule(session: Session) -> None:
                self._settle(
                    session, original_id, EntryStatus.drift if drift else EntryStatus.not_needed
                )

            await fenced(self.ectx, self.lease, settle_rule)
            if drift:
                self.result.drift.append(f"{role} {rule_id}: {decision.reason}")
            return

        def open_rule_restore(session: Session) -> int | None:
            entry, _ = open_intent(
                session,
                key=rollback_key(original.idempotency_key),
                plan_id=self.plan_id,
                phase_key=self.phase_key,
                step_index=original.step_index,
                operation=Operation.restore_policy_rule,
                target=original.target,
                prior_state=live,
                desired_state=prior,
                fencing_token=self.lease.token,
                now=self.ectx.clock.now(),
                reverses_id=original.id,
            )
            return entry.id

        entry_id = await fenced(self.ectx, self.lease, open_rule_restore)
        assert entry_id is not None
        error: GraphError | None = None
        try:
            await self.client.update_policy_rule(policy_id, parse_policy_rule(prior))
        except GraphError as exc:
            error = exc  # perhaps applied anyway (a lost answer): the read-back decides
        try:
            after = (await self.client.get_policy_rule(policy_id, rule_id)).to_patch_body()
        except GraphError as exc:
            self._fail(f"reading {rule_id} of {role} back failed: {describe(exc)}", exc)
            return
        restored = decide_policy_rule(prior=prior, desired=desired, live=after)

        def record_rule_restore(session: Session) -> None:
            if restored.verdict is Verdict.not_needed:
                record_outcome(
                    session, entry_id, status=EntryStatus.applied, now=self.ectx.clock.now()
                )
                self._settle(session, original_id, EntryStatus.reverted)
                return
            record_outcome(
                session,
                entry_id,
                status=EntryStatus.failed,
                now=self.ectx.clock.now(),
                error=error or "the rule reads back differently",
            )

        await fenced(self.ectx, self.lease, record_rule_restore)
        if restored.verdict is Verdict.not_needed:
            return
        self._fail(
            f"restoring {rule_id} of {role} failed: "
            + (describe(error) if error else "it reads back differently"),
            error or "the rule reads back differently",
        )

    async def _undo_review(self, original: JournalEntry) -> None:
        assert original.id is not None
        original_id = original.id
        if original.id in self.settled:
            return
        name = original.target.get("display_name")
        definition_id = (original.outcome or {}).get("definition_id")
        exists = False
        try:
            if definition_id is None:
                async for found in self.client.iter_access_review_definitions(display_name=name):
                    definition_id = found.id
                    break
            if definition_id is not None:
                await self.client.get_access_review_definition(definition_id)
                exists = True
        except GraphNotFoundError:
            exists = False
        except GraphError as exc:
            self._fail(f"reading review {name} failed: {describe(exc)}", exc)
            return
        decision = decide_access_review(exists=exists)
        if decision.verdict is Verdict.drift:
            never_made = original.status != EntryStatus.applied.value

            def settle_review(session: Session) -> None:
                self._settle(
                    session,
                    original_id,
                    EntryStatus.not_needed if never_made else EntryStatus.drift,
                )

            await fenced(self.ectx, self.lease, settle_review)
            if not never_made:
                self.result.drift.append(f"review {name}: {decision.reason}")
            return
        assert definition_id is not None

        def open_review_delete(session: Session) -> int | None:
            entry, _ = open_intent(
                session,
                key=rollback_key(original.idempotency_key),
                plan_id=self.plan_id,
                phase_key=self.phase_key,
                step_index=original.step_index,
                operation=Operation.delete_access_review,
                target={**original.target, "definition_id": definition_id},
                prior_state={"definition_id": definition_id},
                desired_state={"definition": None},
                fencing_token=self.lease.token,
                now=self.ectx.clock.now(),
                reverses_id=original.id,
            )
            return entry.id

        entry_id = await fenced(self.ectx, self.lease, open_review_delete)
        assert entry_id is not None
        try:
            await self.client.delete_access_review_definition(definition_id)
        except GraphNotFoundError:
            pass  # already gone: what we wanted
        except GraphError as exc:
            if not is_transient(exc):
                failure = partial(
                    record_outcome,
                    entry_id=entry_id,
                    status=EntryStatus.failed,
                    now=self.ectx.clock.now(),
                    error=exc,
                )
                await fenced(self.ectx, self.lease, failure)
                self._fail(f"deleting review {name} failed: {describe(exc)}", exc)
                return
        try:
            await self.client.get_access_review_definition(definition_id)
            still_there = True
        except GraphNotFoundError:
            still_there = False
        except GraphError as exc:
            self._fail(f"reading review {name} back failed: {describe(exc)}", exc)
            return

        def record_review_delete(session: Session) -> None:
            if still_there:
                record_outcome(
                    session,
                    entry_id,
                    status=EntryStatus.failed,
                    now=self.ectx.clock.now(),
                    error="the review definition is still there",
                )
            else:
                record_outcome(
                    session, entry_id, status=EntryStatus.applied, now=self.ectx.clock.now()
                )
                self._settle(session, original_id, EntryStatus.reverted)

        await fenced(self.ectx, self.lease, record_review_delete)
        if still_there:
            self._fail(f"deleting review {name} failed: it is still there")


def _given_back_outside(session: Any, removal: JournalEntry) -> bool:
    """The plan removed this Active assignment and no rollback of ours re-created it, yet it is
    there: someone else gave it back (invariant 4: drift, reported and left alone)."""
    if removal.status != EntryStatus.applied.value:
        return False  # the removal may never have happened
    return JournalRepository(session).get_by_key(rollback_key(removal.idempotency_key)) is None


def _first_error(*candidates: object) -> GraphError | None:
    return next((c for c in candidates if isinstance(c, GraphError)), None)


def _set_state(session: Any, item: WorkItem, state: WorkItemState, now: datetime) -> None:
    item.state = state.value
    item.updated_at = now
    session.add(item)


def _who(undo: _ItemUndo) -> str:
    return f"{undo.target.principal_id} / {role_name(undo.target.role_id)}"


async def _send(
    client: GraphClient, kind: str, requests: Sequence[ScheduleRequestCreate]
) -> list[ScheduleRequest | GraphError]:
    try:
        return await client.create_schedule_requests(kind, list(requests))  # type: ignore[arg-type]
    except GraphError as exc:
        return [exc for _ in requests]
