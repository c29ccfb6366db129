"""Playbook step 4: convert a cohort's standing Active assignments to Eligible.

Per (principal, role, scope), in the plan's role order: journal the intent, create the Eligible
assignment, confirm it, journal and remove the Active one, confirm (invariant 1: at every
instant the principal holds the role one way or the other). Twenty items share a ``$batch``,
several batches run at once, and the client paces writes to the tenant's quota.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import update
from sqlmodel import Session

from app.db.models import WorkItem
from app.db.repos.work_items import OpenItem, WorkItemRepository
from app.domain.cohort import Selected, select_conversions
from app.domain.journal import EntryStatus, Operation, item_key
from app.domain.plan import ConvertCohortStep
from app.domain.progress import WorkItemState
from app.domain.roles import LAST_ACTIVE_PROTECTED, role_name
from app.domain.rules import eligibility_expiration
from app.engine.journal import (
    DONE_STATUSES,
    Intent,
    OpenEntry,
    Outcome,
    open_intent,
    open_intents,
    record_outcome,
    record_outcomes,
)
from app.engine.live import (
    cohort_members,
    eligible_principals,
    gather_bounded,
    permanent_holdings,
    role_rules,
)
from app.engine.lookups import Target, assigned_instances, eligibility_schedules
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.transient import is_transient
from app.graph.client import LARGE_PAGE
from app.graph.errors import (
    GraphAlreadyExistsError,
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


def _target(item: OpenItem) -> Target:
    return Target(item.principal_id, item.role_definition_id, item.directory_scope_id)


def _describe(item: WorkItem | OpenItem) -> str:
    who = item.principal_upn or item.principal_name or item.principal_id
    return f"{who} / {role_name(item.role_definition_id)}"


def _error_text(exc: GraphError) -> str:
    return f"{exc.code or exc.status}: {exc.message}"


class ConvertCohort:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, ConvertCohortStep)
        roles = [str(r) for r in sc.spec.role_ids(step.roles)]

        materialized = await sc.read(
            lambda session: (
                WorkItemRepository(session).count(sc.plan_id, sc.phase.key, sc.step_index) > 0
            )
        )
        # The role settings are read while the cohort is: both are round trips before any write.
        expirations = asyncio.ensure_future(self._expirations(sc, roles))
        try:
            if not materialized:
                try:
                    await self._materialize(sc, step, roles)
                except GraphError as exc:
                    return StepResult.failed(f"reading the cohort failed: {_error_text(exc)}")
            durations = await expirations
        finally:
            if not expirations.done():
                expirations.cancel()
                await asyncio.gather(expirations, return_exceptions=True)
        if isinstance(durations, StepResult):
            return durations
        result = await self._convert(sc, step, roles, durations)
        if result is not None:
            return result

        failed = await sc.read(
            lambda session: WorkItemRepository(session).list_items(
                sc.plan_id,
                phase_key=sc.phase.key,
                step_index=sc.step_index,
                states=[WorkItemState.failed.value],
            )
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
        # Three independent reads, each a few round trips: run them at once.
        holdings_task = asyncio.ensure_future(permanent_holdings(sc.client, roles, limit=limit))
        cohort_task = asyncio.ensure_future(cohort_members(sc.client, step.cohort, sc.bindings))
        eligible_task = asyncio.ensure_future(
            gather_bounded(roles, lambda r: eligible_principals(sc.client, r), limit=limit)
        )
        reads = (holdings_task, cohort_task, eligible_task)
        try:
            await asyncio.gather(*reads)
        finally:
            for task in reads:
                task.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
        selected, excluded = select_conversions(
            holdings_task.result(),
            roles_in_order=roles,
            cohort=cohort_task.result(),
            break_glass=set(sc.break_glass),
        )
        eligible_by_role = dict(zip(roles, eligible_task.result(), strict=True))
        now = sc.engine.clock.now()
        rows: list[dict[str, Any]] = []
        preexisting: list[tuple[Selected, str]] = []
        for position, choice in enumerate(
            selected + [Selected(e.holding, e.reason) for e in excluded]
        ):
            holding = choice.holding
            rows.append(
                {
                    "plan_id": sc.plan_id,
                    "phase_key": sc.phase.key,
                    "step_index": sc.step_index,
                    "position": position,
                    "principal_id": holding.principal_id,
                    "principal_type": holding.principal_type,
                    "principal_name": holding.principal_name,
                    "principal_upn": holding.principal_upn,
                    "role_definition_id": holding.role_definition_id,
                    "directory_scope_id": holding.directory_scope_id,
                    "state": (
                        WorkItemState.skipped if choice.skip_reason else WorkItemState.pending
                    ).value,
                    "last_error": choice.skip_reason,
                    "updated_at": now,
                }
            )
            schedule = eligible_by_role[holding.role_definition_id].get(
                (holding.principal_id, holding.directory_scope_id)
            )
            if schedule is not None and choice.skip_reason is None:
                preexisting.append((choice, schedule))

        def record_items(session: Session) -> None:
            repo = WorkItemRepository(session)
            if repo.count(sc.plan_id, sc.phase.key, sc.step_index) > 0:
                return  # another attempt got here first
            repo.add_rows(rows)
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

        await sc.write(record_items)
        log.info(
            "engine.convert.materialized",
            plan_id=sc.plan_id,
            phase=sc.phase.key,
            items=len(rows),
            excluded=len(excluded),
        )

    async def _expirations(
        self, sc: StepContext, roles: list[str]
    ) -> dict[str, timedelta | None] | StepResult:
        """How long new eligible assignments last, per role, as its rules allow."""
        try:
            rules = await gather_bounded(
                roles, lambda r: role_rules(sc.client, r), limit=sc.limits.max_concurrency
            )
        except GraphError as exc:
            return StepResult.failed(f"reading role settings failed: {_error_text(exc)}")
        durations: dict[str, timedelta | None] = {}
        for role_id, (_, role_rule_set) in zip(roles, rules, strict=True):
            target_role = sc.spec.role(UUID(role_id))
            wanted = target_role.settings.eligible_expiration if target_role else None
            durations[role_id], note = eligibility_expiration(role_rule_set, wanted)
            if note:
                sc.notes.append(f"{role_name(role_id)}: {note}")
        return durations

    async def _convert(
        self,
        sc: StepContext,
        step: ConvertCohortStep,
        roles: list[str],
        durations: dict[str, timedelta | None],
    ) -> StepResult | None:
        """Work through the items in rounds; failed attempts are retried in the next round.

        Chunks are formed per role and queued in the plan's role order; several run at once.
        """
        rounds = 0
        while True:
            reason = await sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)

            todo = await sc.read(self._open_items(sc))
            if not todo:
                return None
            if rounds:
                await sc.engine.sleeper(min(2.0 * rounds, 10.0))
            rounds += 1
            size = sc.engine.batch_size
            chunks: list[list[OpenItem]] = []
            for role_id in roles:
                mine = [i for i in todo if i.role_definition_id == role_id]
                chunks += [mine[i : i + size] for i in range(0, len(mine), size)]
            # Who must keep Active is only needed before the first removal: read it meanwhile.
            keep = asyncio.ensure_future(self._last_holders_to_keep(sc, todo))

            async def work(chunk: list[OpenItem], keep: asyncio.Future[set[int]] = keep) -> None:
                duration = durations[chunk[0].role_definition_id]
                await self._process_chunk(sc, step, chunk, duration, keep)

            try:
                await gather_bounded(chunks, work, limit=sc.limits.max_concurrency)
            finally:
                keep.cancel()
                await asyncio.gather(keep, return_exceptions=True)

    @staticmethod
    def _open_items(sc: StepContext) -> Callable[[Session], list[OpenItem]]:
        def open_items(session: Session) -> list[OpenItem]:
            return WorkItemRepository(session).open_items(
                sc.plan_id,
                phase_key=sc.phase.key,
                step_index=sc.step_index,
                states=[WorkItemState.pending.value, WorkItemState.eligible_created.value],
            )

        return open_items

    async def _last_holders_to_keep(self, sc: StepContext, todo: list[OpenItem]) -> set[int]:
        """PIM refuses to remove the last active Global/Privileged Role Administrator.

        When converting every remaining standing holder of such a role would leave nobody, the
        last item of that role keeps its Active assignment (it becomes Eligible too).
        """

        async def last_of(role_id: str) -> int | None:
            mine = [i for i in todo if i.role_definition_id == role_id]
            if not mine:
                return None
            leaving = {i.principal_id for i in mine}
            holders = {
                instance.principal_id
                async for instance in sc.client.iter_assignment_schedule_instances(
                    role_definition_id=role_id, assignment_type="Assigned", top=LARGE_PAGE
                )
            }
            return None if holders - leaving else mine[-1].id

        found = await asyncio.gather(*(last_of(role) for role in sorted(LAST_ACTIVE_PROTECTED)))
        return {item_id for item_id in found if item_id is not None}

    async def _process_chunk(
        self,
        sc: StepContext,
        step: ConvertCohortStep,
        chunk: list[OpenItem],
        duration: timedelta | None,
        last_holders: asyncio.Future[set[int]],
    ) -> None:
        if await sc.stop_reason():
            return
        pending = [i for i in chunk if i.state == WorkItemState.pending.value]
        ready = [i for i in chunk if i.state == WorkItemState.eligible_created.value]
        if pending:
            outcomes = await self._create_eligible(sc, step, pending, duration)
            await self._record(sc, pending, outcomes)
            ready += [
                i
                for i in pending
                if outcomes.get(i.id or 0, _Outcome(0, None)).state
                is WorkItemState.eligible_created
            ]
        if not ready:
            return
        keep: set[int] = set()
        if chunk[0].role_definition_id in LAST_ACTIVE_PROTECTED:
            # Shielded: this chunk being cancelled must not cancel the read the others share.
            keep = await asyncio.shield(last_holders)
        kept = [i for i in ready if (i.id or 0) in keep]
        if kept:
            await self._record(sc, kept, {i.id or 0: _kept_active(i) for i in kept})
        ready = [i for i in ready if (i.id or 0) not in keep]
        if ready and not await sc.stop_reason():
            await self._record(sc, ready, await self._remove_active(sc, step, ready))

    # -- stage A: create and confirm the Eligible assignment ----------------------------------

    async def _open(
        self,
        sc: StepContext,
        items: list[OpenItem],
        operation: Operation,
        prior: dict[str, Any],
        desired: dict[str, Any],
    ) -> dict[int, OpenEntry]:
        """Commit the intents of a chunk before its Graph call (invariant 4 and 5)."""
        intents = {
            item.id or 0: Intent(
                key=item_key(
                    sc.plan_id,
                    operation,
                    item.principal_id,
                    item.role_definition_id,
                    item.directory_scope_id,
                ),
                operation=operation,
                target=_target_json(
                    item.principal_id, item.role_definition_id, item.directory_scope_id, item.id
                ),
                prior_state={**prior, "principal_type": item.principal_type},
                desired_state=desired,
            )
            for item in items
        }

        opened = await sc.write(
            partial(
                open_intents,
                intents=list(intents.values()),
                plan_id=sc.plan_id,
                phase_key=sc.phase.key,
                step_index=sc.step_index,
                fencing_token=sc.lease.token,
                now=sc.engine.clock.now(),
            )
        )
        return {item_id: opened[intent.key] for item_id, intent in intents.items()}

    async def _close(self, sc: StepContext, results: list[Outcome]) -> None:
        if results:
            await sc.write(partial(record_outcomes, outcomes=results, now=sc.engine.clock.now()))

    async def _create_eligible(
        self,
        sc: StepContext,
        step: ConvertCohortStep,
        items: list[OpenItem],
        duration: timedelta | None,
    ) -> dict[int, _Outcome]:
        expiration = (
            ExpirationCreate(type=ExpirationType.no_expiration)
            if duration is None
            else ExpirationCreate(type=ExpirationType.after_duration, duration=duration)
        )
        entries = await self._open(
            sc,
            items,
            Operation.create_eligibility,
            {"eligible_schedule_id": None},
            {"eligible": True, "expiration": expiration.to_graph()},
        )
        to_send = [
            i
            for i in items
            if entries[i.id or 0].status not in DONE_STATUSES and not entries[i.id or 0].was_pending
        ]
        to_verify = [i for i in items if entries[i.id or 0].was_pending]
        results: list[Outcome] = []
        outcomes: dict[int, _Outcome] = {}

        def applied(item: OpenItem, outcome: dict[str, Any], request_id: str | None = None) -> None:
            results.append(
                Outcome(entries[item.id or 0].id, EntryStatus.applied, outcome, request_id)
            )

        def failed(
            item: OpenItem, error: GraphError | str, outcome: dict[str, Any] | None = None
        ) -> None:
            results.append(
                Outcome(entries[item.id or 0].id, EntryStatus.failed, outcome, None, error)
            )
            outcomes[item.id or 0] = _Outcome(
                item.id or 0,
                None,
                f"creating the Eligible assignment failed: {_text(error)}",
                permanent=isinstance(error, GraphPolicyValidationError),
            )

        if to_verify:
            # A pending intent from an earlier run: the call may or may not have happened.
            found = await eligibility_schedules(sc.client, [_target(i) for i in to_verify])
            for item in to_verify:
                value = found[_target(item)]
                if isinstance(value, str):
                    applied(item, {"eligible_schedule_id": value, "verified": True})
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
            unknown: list[OpenItem] = []
            for item, answer in zip(to_send, answers, strict=True):
                if isinstance(answer, ScheduleRequest) and answer.is_success:
                    applied(
                        item,
                        {
                            "eligible_schedule_id": answer.target_schedule_id,
                            "status": answer.status,
                        },
                        answer.id,
                    )
                elif isinstance(answer, ScheduleRequest):
                    failed(item, f"Graph answered {answer.status}", {"status": answer.status})
                elif isinstance(answer, GraphAlreadyExistsError) or is_transient(answer):
                    unknown.append(item)  # maybe applied: read before deciding
                else:
                    failed(item, answer)
            if unknown:
                found = await eligibility_schedules(sc.client, [_target(i) for i in unknown])
                for item in unknown:
                    value = found[_target(item)]
                    if isinstance(value, str):
                        applied(item, {"eligible_schedule_id": value, "verified": True})
                    else:
                        failed(item, "no answer from Graph and no eligibility found")
        await self._close(sc, results)

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
        self, sc: StepContext, step: ConvertCohortStep, items: list[OpenItem]
    ) -> dict[int, _Outcome]:
        entries = await self._open(
            sc,
            items,
            Operation.remove_active,
            {"active": True, "permanent": True},
            {"active": False},
        )
        to_send = [i for i in items if entries[i.id or 0].status not in DONE_STATUSES]
        sent: dict[int, ScheduleRequest | GraphError] = {}
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
            # A pending intent is simply sent again: a removal that already happened answers
            # "does not exist", and what Graph reports afterwards is the truth.
            answers = await _send(sc, "assignment", requests)
            sent = {item.id or 0: answer for item, answer in zip(to_send, answers, strict=True)}

        # Confirm the Active assignment is gone (invariant 1's second half, read from Graph).
        found = await assigned_instances(sc.client, [_target(i) for i in items])
        results: list[Outcome] = []
        outcomes: dict[int, _Outcome] = {}
        for item in items:
            entry = entries[item.id or 0]
            answer = sent.get(item.id or 0)
            value = found[_target(item)]
            request_id = answer.id if isinstance(answer, ScheduleRequest) else None
            if value is None:
                if entry.status not in DONE_STATUSES:
                    results.append(
                        Outcome(
                            entry.id,
                            EntryStatus.applied,
                            {"status": getattr(answer, "status", None)},
                            request_id,
                        )
                    )
                outcomes[item.id or 0] = _Outcome(item.id or 0, WorkItemState.done)
                continue
            if isinstance(value, GraphError):
                outcomes[item.id or 0] = _Outcome(
                    item.id or 0, None, f"confirming failed: {_error_text(value)}"
                )
                continue
            error: GraphError | str = (
                answer
                if isinstance(answer, GraphError)
                else "the Active assignment is still there after removal"
            )
            results.append(Outcome(entry.id, EntryStatus.failed, None, request_id, error))
            outcomes[item.id or 0] = _Outcome(
                item.id or 0,
                None,
                f"removing the Active assignment failed: {_text(error)}",
                permanent=isinstance(error, GraphPolicyValidationError),
            )
        await self._close(sc, results)
        return outcomes

    async def _record(
        self, sc: StepContext, items: Sequence[OpenItem], outcomes: dict[int, _Outcome]
    ) -> None:
        now = sc.engine.clock.now()
        rows: list[dict[str, Any]] = []
        for item in items:
            outcome = outcomes.get(item.id or 0)
            if outcome is None:
                continue
            if outcome.state is not None:
                item.state = outcome.state.value
            else:
                item.attempts += 1
                if outcome.permanent or item.attempts >= sc.engine.item_attempts:
                    item.state = WorkItemState.failed.value
            rows.append(
                {
                    "id": item.id,
                    "state": item.state,
                    "attempts": item.attempts,
                    "last_error": outcome.error,
                    "updated_at": now,
                }
            )
        if rows:
            await sc.write(lambda session: session.execute(update(WorkItem), rows))


async def _send(
    sc: StepContext, kind: str, requests: list[ScheduleRequestCreate]
) -> list[ScheduleRequest | GraphError]:
    try:
        return await sc.client.create_schedule_requests(kind, requests)  # type: ignore[arg-type]
    except GraphOutcomeUnknownError as exc:
        return [exc for _ in requests]
    except GraphError as exc:
        return [exc for _ in requests]


def _kept_active(item: OpenItem) -> _Outcome:
    return _Outcome(
        item.id or 0,
        WorkItemState.kept_active,
        f"kept Active: the last active {role_name(item.role_definition_id)} "
        "(PIM refuses to remove it); it is also Eligible",
    )


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


register("convert_cohort", ConvertCohort())
