"""Playbook step 4: convert a cohort's standing Active assignments to Eligible.

Per (principal, role, scope), in the plan's role order: journal the intent, create the Eligible
assignment, confirm it, journal and remove the Active one, confirm (invariant 1: at every
instant the principal holds the role one way or the other). Twenty items share a ``$batch``,
several batches run at once, and the client paces writes to the tenant's quota.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.db.models import WorkItem
from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.domain.cohort import Selected, select_conversions
from app.domain.journal import EntryStatus, Operation, item_key
from app.domain.plan import ConvertCohortStep
from app.domain.progress import WorkItemState
from app.domain.roles import LAST_ACTIVE_PROTECTED, role_name
from app.domain.rules import eligibility_expiration
from app.engine.journal import DONE_STATUSES, open_intent, record_outcome
from app.engine.live import (
    binding_members,
    eligible_principals,
    gather_bounded,
    permanent_holdings,
    role_rules,
)
from app.engine.lookups import Target, assigned_instances, eligibility_schedules
from app.engine.steps.base import StepContext, StepResult, register
from app.graph.errors import (
    GraphAlreadyExistsError,
    GraphDoesNotExistError,
    GraphError,
    GraphOutcomeUnknownError,
    GraphPolicyValidationError,
)
from app.graph.models import (
    ExpirationCreate,
    ExpirationType,
    ScheduleInfoCreate,
    ScheduleRequest,
    ScheduleRequestAction,
    ScheduleRequestCreate,
)
from app.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class _Outcome:
    """What happened to one item in one stage."""

    item_id: int
    state: WorkItemState | None  # new state, or None to leave it for a later round
    error: str | None = None
    permanent: bool = False  # a failure that retrying will not fix


def _target(item: WorkItem) -> Target:
    return Target(item.principal_id, item.role_definition_id, item.directory_scope_id)


def _describe(item: WorkItem) -> str:
    who = item.principal_upn or item.principal_name or item.principal_id
    return f"{who} / {role_name(item.role_definition_id)}"


def _error_text(exc: GraphError) -> str:
    return f"{exc.code or exc.status}: {exc.message}"


class ConvertCohort:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, ConvertCohortStep)
        roles = [str(r) for r in sc.spec.role_ids(step.roles)]
        with sc.engine.session_factory() as session:
            materialized = (
                WorkItemRepository(session).count(sc.plan_id, sc.phase.key, sc.step_index) > 0
            )
        if not materialized:
            try:
                await self._materialize(sc, step, roles)
            except GraphError as exc:
                return StepResult.failed(f"reading the cohort failed: {_error_text(exc)}")
        for role_id in roles:
            result = await self._convert_role(sc, step, role_id)
            if result is not None:
                return result
        with sc.engine.session_factory() as session:
            failed = WorkItemRepository(session).list_items(
                sc.plan_id,
                phase_key=sc.phase.key,
                step_index=sc.step_index,
                states=[WorkItemState.failed.value],
            )
        if failed:
            sample = "; ".join(f"{_describe(i)}: {i.last_error}" for i in failed[:3])
            return StepResult.failed(f"{len(failed)} item(s) failed after retries ({sample})")
        return StepResult.done()

    async def _materialize(
        self, sc: StepContext, step: ConvertCohortStep, roles: list[str]
    ) -> None:
        """Fix the step's items once, so a retry or a restart works on exactly the same set."""
        limit = sc.limits.max_concurrency
        holdings = await permanent_holdings(sc.client, roles, limit=limit)
        cohort: set[str] | None = None
        if step.cohort.binding is not None:
            cohort = await binding_members(sc.client, sc.bindings[step.cohort.binding])
        elif step.cohort.principals is not None:
            cohort = {str(p) for p in step.cohort.principals}
        selected, excluded = select_conversions(
            holdings, roles_in_order=roles, cohort=cohort, break_glass=set(sc.break_glass)
        )
        eligible_by_role = dict(
            zip(
                roles,
                await gather_bounded(
                    roles, lambda r: eligible_principals(sc.client, r), limit=limit
                ),
                strict=True,
            )
        )
        now = sc.engine.clock.now()
        rows: list[WorkItem] = []
        preexisting: list[tuple[Selected, str]] = []
        for position, choice in enumerate(
            selected + [Selected(e.holding, e.reason) for e in excluded]
        ):
            holding = choice.holding
            rows.append(
                WorkItem(
                    plan_id=sc.plan_id,
                    phase_key=sc.phase.key,
                    step_index=sc.step_index,
                    position=position,
                    principal_id=holding.principal_id,
                    principal_type=holding.principal_type,
                    principal_name=holding.principal_name,
                    principal_upn=holding.principal_upn,
                    role_definition_id=holding.role_definition_id,
                    directory_scope_id=holding.directory_scope_id,
                    state=(
                        WorkItemState.skipped if choice.skip_reason else WorkItemState.pending
                    ).value,
                    last_error=choice.skip_reason,
                    updated_at=now,
                )
            )
            schedule = eligible_by_role[holding.role_definition_id].get(
                (holding.principal_id, holding.directory_scope_id)
            )
            if schedule is not None and choice.skip_reason is None:
                preexisting.append((choice, schedule))
        with sc.write() as session:
            repo = WorkItemRepository(session)
            if repo.count(sc.plan_id, sc.phase.key, sc.step_index) > 0:
                return  # another attempt got here first
            repo.add_all(rows)
            for choice, schedule in preexisting:
                # Already eligible before the plan: nothing to create, and rollback must not
                # remove an eligibility the plan did not make.
                holding = choice.holding
                entry, _ = open_intent(
                    session,
                    key=item_key(
                        sc.plan_id,
                        Operation.create_eligibility,
                        holding.principal_id,
                        holding.role_definition_id,
                        holding.directory_scope_id,
                    ),
                    plan_id=sc.plan_id,
                    phase_key=sc.phase.key,
                    step_index=sc.step_index,
                    operation=Operation.create_eligibility,
                    target=_target_json(
                        holding.principal_id, holding.role_definition_id, holding.directory_scope_id
                    ),
                    prior_state={"eligible_schedule_id": schedule},
                    desired_state={"eligible": True},
                    fencing_token=sc.lease.token,
                    now=now,
                )
                if entry.status == EntryStatus.pending.value and entry.id is not None:
                    record_outcome(
                        session,
                        entry.id,
                        status=EntryStatus.not_needed,
                        now=now,
                        outcome={
                            "eligible_schedule_id": schedule,
                            "note": "already eligible before the plan",
                        },
                    )
        log.info(
            "engine.convert.materialized",
            plan_id=sc.plan_id,
            phase=sc.phase.key,
            items=len(rows),
            excluded=len(excluded),
        )

    async def _convert_role(
        self, sc: StepContext, step: ConvertCohortStep, role_id: str
    ) -> StepResult | None:
        target_role = sc.spec.role(_uuid(role_id))
        try:
            _, rules = await role_rules(sc.client, role_id)
        except GraphError as exc:
            return StepResult.failed(
                f"{role_name(role_id)}: reading its settings failed: {_error_text(exc)}"
            )
        wanted = target_role.settings.eligible_expiration if target_role else None
        duration, note = eligibility_expiration(rules, wanted)
        if note:
            sc.notes.append(f"{role_name(role_id)}: {note}")
        rounds = 0
        while True:
            reason = sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)
            with sc.engine.session_factory() as session:
                todo = list(
                    WorkItemRepository(session).list_items(
                        sc.plan_id,
                        phase_key=sc.phase.key,
                        step_index=sc.step_index,
                        role_definition_id=role_id,
                        states=[WorkItemState.pending.value, WorkItemState.eligible_created.value],
                    )
                )
            if not todo:
                return None
            if rounds:
                await sc.engine.sleeper(min(2.0 * rounds, 10.0))
            rounds += 1
            size = sc.engine.batch_size
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            protected = role_id in LAST_ACTIVE_PROTECTED

            async def work(chunk: list[WorkItem], protected: bool = protected) -> None:
                await self._process_chunk(sc, step, chunk, duration, protected)

            await gather_bounded(chunks, work, limit=sc.limits.max_concurrency)

    async def _process_chunk(
        self,
        sc: StepContext,
        step: ConvertCohortStep,
        chunk: list[WorkItem],
        duration: timedelta | None,
        protected: bool,
    ) -> None:
        if sc.stop_reason():
            return
        pending = [i for i in chunk if i.state == WorkItemState.pending.value]
        ready = [i for i in chunk if i.state == WorkItemState.eligible_created.value]
        if pending:
            outcomes = await self._create_eligible(sc, step, pending, duration)
            self._record(sc, pending, outcomes)
            ready += [
                i
                for i in pending
                if outcomes.get(i.id or 0, _Outcome(0, None)).state
                is WorkItemState.eligible_created
            ]
        if ready and not sc.stop_reason():
            if protected:
                for item in ready:
                    self._record(sc, [item], await self._remove_active(sc, step, [item], True))
            else:
                self._record(sc, ready, await self._remove_active(sc, step, ready, False))

    # -- stage A: create and confirm the Eligible assignment ----------------------------------

    async def _create_eligible(
        self,
        sc: StepContext,
        step: ConvertCohortStep,
        items: list[WorkItem],
        duration: timedelta | None,
    ) -> dict[int, _Outcome]:
        now = sc.engine.clock.now()
        expiration = (
            ExpirationCreate(type=ExpirationType.no_expiration)
            if duration is None
            else ExpirationCreate(type=ExpirationType.after_duration, duration=duration)
        )
        entries: dict[int, tuple[int, str, bool]] = {}
        with sc.write() as session:
            for item in items:
                entry, was_pending = open_intent(
                    session,
                    key=item_key(
                        sc.plan_id,
                        Operation.create_eligibility,
                        item.principal_id,
                        item.role_definition_id,
                        item.directory_scope_id,
                    ),
                    plan_id=sc.plan_id,
                    phase_key=sc.phase.key,
                    step_index=sc.step_index,
                    operation=Operation.create_eligibility,
                    target=_target_json(
                        item.principal_id, item.role_definition_id, item.directory_scope_id, item.id
                    ),
                    prior_state={"eligible_schedule_id": None},
                    desired_state={"eligible": True, "expiration": expiration.to_graph()},
                    fencing_token=sc.lease.token,
                    now=now,
                )
                assert entry.id is not None
                assert item.id is not None
                entries[item.id] = (entry.id, entry.status, was_pending)

        to_send: list[WorkItem] = []
        to_verify: list[WorkItem] = []
        for item in items:
            _, status, was_pending = entries[item.id or 0]
            if status in DONE_STATUSES:
                continue
            (to_verify if was_pending else to_send).append(item)

        results: dict[int, tuple[EntryStatus, dict[str, Any], GraphError | str | None]] = {}
        if to_verify:
            # A pending intent from an earlier run: the call may or may not have happened.
            found = await eligibility_schedules(sc.client, [_target(i) for i in to_verify])
            for item in to_verify:
                value = found[_target(item)]
                if isinstance(value, str):
                    results[item.id or 0] = (
                        EntryStatus.applied,
                        {"eligible_schedule_id": value, "verified": True},
                        None,
                    )
                else:
                    to_send.append(item)
        if to_send:
            requests = [
                ScheduleRequestCreate(
                    action=ScheduleRequestAction.admin_assign,
                    principal_id=i.principal_id,
                    role_definition_id=i.role_definition_id,
                    directory_scope_id=i.directory_scope_id,
                    justification=step.justification,
                    schedule_info=ScheduleInfoCreate(expiration=expiration),
                )
                for i in to_send
            ]
            answers = await _send(sc, "eligibility", requests)
            unknown: list[WorkItem] = []
            for item, answer in zip(to_send, answers, strict=True):
                if isinstance(answer, ScheduleRequest) and answer.is_success:
                    results[item.id or 0] = (
                        EntryStatus.applied,
                        {
                            "eligible_schedule_id": answer.target_schedule_id,
                            "request_id": answer.id,
                            "status": answer.status,
                        },
                        None,
                    )
                elif isinstance(answer, ScheduleRequest):
                    results[item.id or 0] = (
                        EntryStatus.failed,
                        {"status": answer.status},
                        f"Graph answered {answer.status}",
                    )
                elif isinstance(answer, GraphAlreadyExistsError | GraphOutcomeUnknownError):
                    unknown.append(item)
                else:
                    results[item.id or 0] = (EntryStatus.failed, {}, answer)
            if unknown:
                found = await eligibility_schedules(sc.client, [_target(i) for i in unknown])
                for item in unknown:
                    value = found[_target(item)]
                    if isinstance(value, str):
                        results[item.id or 0] = (
                            EntryStatus.applied,
                            {"eligible_schedule_id": value, "verified": True},
                            None,
                        )
                    else:
                        results[item.id or 0] = (
                            EntryStatus.failed,
                            {},
                            "outcome unknown and no eligibility found",
                        )

        outcomes: dict[int, _Outcome] = {}
        with sc.write() as session:
            for item_id, (status, outcome, error) in results.items():
                entry_id = entries[item_id][0]
                record_outcome(
                    session,
                    entry_id,
                    status=status,
                    now=sc.engine.clock.now(),
                    outcome=outcome,
                    request_id=outcome.get("request_id"),
                    error=error,
                )
                if status is EntryStatus.failed:
                    outcomes[item_id] = _Outcome(
                        item_id,
                        None,
                        f"creating the Eligible assignment failed: {_text(error)}",
                        permanent=isinstance(error, GraphPolicyValidationError),
                    )

        # Confirm every item whose eligibility should now exist (invariant 1's first half).
        confirm = [i for i in items if (i.id or 0) not in outcomes]
        if confirm:
            found = await eligibility_schedules(sc.client, [_target(i) for i in confirm])
            for item in confirm:
                value = found[_target(item)]
                if isinstance(value, str):
                    outcomes[item.id or 0] = _Outcome(item.id or 0, WorkItemState.eligible_created)
                elif isinstance(value, GraphError):
                    outcomes[item.id or 0] = _Outcome(
                        item.id or 0, None, f"confirming failed: {_error_text(value)}"
                    )
                else:
                    outcomes[item.id or 0] = _Outcome(
                        item.id or 0, None, "the Eligible assignment is not there after creation"
                    )
        return outcomes

    # -- stage B: remove and confirm the Active assignment --------------------------------------

    async def _remove_active(
        self, sc: StepContext, step: ConvertCohortStep, items: list[WorkItem], protected: bool
    ) -> dict[int, _Outcome]:
        outcomes: dict[int, _Outcome] = {}
        if protected:
            kept = await self._last_active(sc, items[0])
            if kept is not None:
                return {items[0].id or 0: kept}
        now = sc.engine.clock.now()
        entries: dict[int, tuple[int, str, bool]] = {}
        with sc.write() as session:
            for item in items:
                entry, was_pending = open_intent(
                    session,
                    key=item_key(
                        sc.plan_id,
                        Operation.remove_active,
                        item.principal_id,
                        item.role_definition_id,
                        item.directory_scope_id,
                    ),
                    plan_id=sc.plan_id,
                    phase_key=sc.phase.key,
                    step_index=sc.step_index,
                    operation=Operation.remove_active,
                    target=_target_json(
                        item.principal_id, item.role_definition_id, item.directory_scope_id, item.id
                    ),
                    prior_state={
                        "active": True,
                        "permanent": True,
                        "principal_type": item.principal_type,
                    },
                    desired_state={"active": False},
                    fencing_token=sc.lease.token,
                    now=now,
                )
                assert entry.id is not None
                entries[item.id or 0] = (entry.id, entry.status, was_pending)
        to_send = [i for i in items if entries[i.id or 0][1] not in DONE_STATUSES]
        results: dict[int, tuple[EntryStatus, dict[str, Any], GraphError | str | None]] = {}
        if to_send:
            requests = [
                ScheduleRequestCreate(
                    action=ScheduleRequestAction.admin_remove,
                    principal_id=i.principal_id,
                    role_definition_id=i.role_definition_id,
                    directory_scope_id=i.directory_scope_id,
                    justification=step.justification,
                )
                for i in to_send
            ]
            # A pending intent is simply re-sent: removing is idempotent once verified below,
            # and "does not exist" answers are confirmed by reading.
            answers = await _send(sc, "assignment", requests)
            for item, answer in zip(to_send, answers, strict=True):
                if isinstance(answer, ScheduleRequest) and answer.is_success:
                    results[item.id or 0] = (
                        EntryStatus.applied,
                        {"request_id": answer.id, "status": answer.status},
                        None,
                    )
                elif isinstance(answer, GraphDoesNotExistError | GraphOutcomeUnknownError):
                    results[item.id or 0] = (EntryStatus.applied, {"verify": True}, None)
                elif isinstance(answer, ScheduleRequest):
                    results[item.id or 0] = (
                        EntryStatus.failed,
                        {"status": answer.status},
                        f"Graph answered {answer.status}",
                    )
                else:
                    results[item.id or 0] = (EntryStatus.failed, {}, answer)

        # Confirm the Active assignment is gone (what Graph reports now is the truth).
        check = [
            i
            for i in items
            if results.get(i.id or 0, (EntryStatus.applied,))[0] is not EntryStatus.failed
        ]
        found = await assigned_instances(sc.client, [_target(i) for i in check]) if check else {}
        with sc.write() as session:
            for item in items:
                entry_id = entries[item.id or 0][0]
                status, outcome, error = results.get(item.id or 0, (EntryStatus.applied, {}, None))
                if status is EntryStatus.failed:
                    record_outcome(
                        session,
                        entry_id,
                        status=status,
                        now=sc.engine.clock.now(),
                        outcome=outcome,
                        error=error,
                    )
                    outcomes[item.id or 0] = _Outcome(
                        item.id or 0,
                        None,
                        f"removing the Active assignment failed: {_text(error)}",
                        permanent=isinstance(error, GraphPolicyValidationError),
                    )
                    continue
                value = found.get(_target(item))
                if value is None:
                    record_outcome(
                        session,
                        entry_id,
                        status=EntryStatus.applied,
                        now=sc.engine.clock.now(),
                        outcome=outcome,
                        request_id=outcome.get("request_id"),
                    )
                    outcomes[item.id or 0] = _Outcome(item.id or 0, WorkItemState.done)
                elif isinstance(value, GraphError):
                    outcomes[item.id or 0] = _Outcome(
                        item.id or 0, None, f"confirming failed: {_error_text(value)}"
                    )
                else:
                    record_outcome(
                        session,
                        entry_id,
                        status=EntryStatus.failed,
                        now=sc.engine.clock.now(),
                        outcome=outcome,
                        error="the Active assignment is still there after removal",
                    )
                    outcomes[item.id or 0] = _Outcome(
                        item.id or 0, None, "the Active assignment is still there after removal"
                    )
        return outcomes

    async def _last_active(self, sc: StepContext, item: WorkItem) -> _Outcome | None:
        """PIM refuses to remove the last active Global/Privileged Role Administrator: keep it."""
        others = {
            instance.principal_id
            async for instance in sc.client.iter_assignment_schedule_instances(
                role_definition_id=item.role_definition_id, assignment_type="Assigned"
            )
            if instance.principal_id != item.principal_id
        }
        if others:
            return None
        return _Outcome(
            item.id or 0,
            WorkItemState.kept_active,
            f"kept Active: the last active {role_name(item.role_definition_id)} "
            "(PIM refuses to remove it); it is also Eligible",
        )

    def _record(
        self, sc: StepContext, items: Sequence[WorkItem], outcomes: dict[int, _Outcome]
    ) -> None:
        now = sc.engine.clock.now()
        with sc.write() as session:
            repo = WorkItemRepository(session)
            for item in items:
                outcome = outcomes.get(item.id or 0)
                if outcome is None:
                    continue
                row = repo.get(item.id or 0)
                if row is None:
                    continue
                row.updated_at = now
                if outcome.state is not None:
                    row.state = outcome.state.value
                    row.last_error = outcome.error
                else:
                    row.attempts += 1
                    row.last_error = outcome.error
                    if outcome.permanent or row.attempts >= sc.engine.item_attempts:
                        row.state = WorkItemState.failed.value
                session.add(row)
                item.state = row.state


async def _send(
    sc: StepContext, kind: str, requests: list[ScheduleRequestCreate]
) -> list[ScheduleRequest | GraphError]:
    try:
        return await sc.client.create_schedule_requests(kind, requests)  # type: ignore[arg-type]
    except GraphOutcomeUnknownError as exc:
        return [exc for _ in requests]
    except GraphError as exc:
        return [exc for _ in requests]


def _target_json(
    principal_id: str, role_id: str, scope: str, item_id: int | None = None
) -> dict[str, Any]:
    target: dict[str, Any] = {"principal_id": principal_id, "role_id": role_id, "scope": scope}
    if item_id is not None:
        target["work_item_id"] = item_id
    return target


def _text(error: GraphError | str | None) -> str:
    if isinstance(error, GraphError):
        return _error_text(error)
    return error or "unknown error"


def _uuid(value: str):  # type: ignore[no-untyped-def]
    from uuid import UUID

    return UUID(value)


_ = (asyncio, JournalRepository)
register("convert_cohort", ConvertCohort())
