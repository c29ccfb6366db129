"""Playbook step 6: one quarterly access review per role, reviewed by the role's owner.

The review's scope is the role's *eligible* users: its default decision removes access when a
reviewer does not answer, and break-glass accounts (permanent Active) must never be in scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import partial
from typing import Any
from uuid import UUID

from app.domain.journal import EntryStatus, Operation, review_key
from app.domain.plan import CreateAccessReviewsStep, ReviewScope
from app.domain.roles import role_name
from app.domain.tenant import Binding, RoleOwnersBinding, UsersBinding
from app.engine.journal import DONE_STATUSES, open_intent, record_outcome
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.transient import ENGINE_ATTEMPTS, is_transient
from app.graph.errors import GraphError
from app.graph.models import AccessReviewDefinitionCreate


def review_display_name(plan_id: str, role_id: str) -> str:
    return f"Quarterly review - {role_name(role_id)} [pim-rollout {plan_id[:8]}]"


def review_body(
    *,
    plan_id: str,
    role_id: str,
    reviewer: str,
    fallback: str | None,
    step: CreateAccessReviewsStep,
    start: date,
) -> dict[str, Any]:
    name = role_name(role_id)
    if step.scope is ReviewScope.eligible:
        query = (
            "/roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal"
            f"&$filter=(isof(principal,'microsoft.graph.user') and roleDefinitionId eq '{role_id}')"
        )
    else:
        query = f"/roleManagement/directory/roleDefinitions/{role_id}"
    body: dict[str, Any] = {
        "displayName": review_display_name(plan_id, role_id),
        "descriptionForAdmins": f"PIM rollout quarterly review of {name}",
        "descriptionForReviewers": f"Confirm who still needs {name}",
        "scope": {
            "@odata.type": "#microsoft.graph.accessReviewQueryScope",
            "query": query,
            "queryType": "MicrosoftGraph",
        },
        "reviewers": [{"query": f"/users/{reviewer}", "queryType": "MicrosoftGraph"}],
        "settings": {
            "mailNotificationsEnabled": True,
            "reminderNotificationsEnabled": True,
            "justificationRequiredOnApproval": True,
            "recommendationsEnabled": True,
            "defaultDecisionEnabled": step.default_decision != "None",
            "defaultDecision": step.default_decision,
            "autoApplyDecisionsEnabled": step.auto_apply,
            "instanceDurationInDays": step.duration_days,
            "recurrence": {
                "pattern": {"type": "absoluteMonthly", "interval": step.interval_months},
                "range": {"type": "noEnd", "startDate": start.isoformat()},
            },
        },
    }
    if fallback and fallback != reviewer:
        body["fallbackReviewers"] = [{"query": f"/users/{fallback}", "queryType": "MicrosoftGraph"}]
    return body


def reviewer_for_binding(
    step: CreateAccessReviewsStep, bindings: Mapping[str, Binding], role_id: str
) -> tuple[str | None, str | None]:
    """The role's reviewer and fallback (Entra has no 'role owner'; the tenant names one)."""
    ref = step.reviewers
    if ref.user is not None:
        return str(ref.user), None
    if ref.binding is not None:
        binding = bindings.get(ref.binding)
        if isinstance(binding, RoleOwnersBinding):
            owner = binding.owners.get(UUID(role_id))
            fallback = str(binding.fallback) if binding.fallback else None
            return (str(owner) if owner else fallback), fallback
        if isinstance(binding, UsersBinding):
            return str(binding.ids[0]), None
    return None, None


class CreateAccessReviews:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, CreateAccessReviewsStep)
        start = sc.engine.clock.now().date()
        for role_uuid in sc.spec.role_ids(step.roles):
            role_id = str(role_uuid)
            reason = await sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)
            reviewer, fallback = reviewer_for_binding(step, sc.bindings, role_id)
            if reviewer is None:
                return StepResult.failed(
                    f"{role_name(role_id)} has no owner in the tenant's role_owners binding and no "
                    "fallback: nobody could review it"
                )
            body = review_body(
                plan_id=sc.plan_id,
                role_id=role_id,
                reviewer=reviewer,
                fallback=fallback,
                step=step,
                start=start,
            )
            try:
                await self._create(sc, role_id, body)
            except GraphError as exc:
                return StepResult.failed(
                    f"{role_name(role_id)}: creating the review failed: "
                    f"{exc.code or exc.status}: {exc.message}"
                )
        return StepResult.done()

    async def _create(self, sc: StepContext, role_id: str, body: dict[str, Any]) -> None:
        key = review_key(sc.plan_id, sc.phase.key, sc.step_index, role_id)

        entry, was_pending = await sc.write(
            partial(
                open_intent,
                key=key,
                plan_id=sc.plan_id,
                phase_key=sc.phase.key,
                step_index=sc.step_index,
                operation=Operation.create_access_review,
                target={"role_id": role_id, "display_name": body["displayName"]},
                prior_state={"definition": None},
                desired_state=body,
                fencing_token=sc.lease.token,
                now=sc.engine.clock.now(),
            )
        )
        entry_id = entry.id
        assert entry_id is not None
        if entry.status in DONE_STATUSES:
            return
        definition_id: str | None = None
        last: GraphError | None = None
        for attempt in range(ENGINE_ATTEMPTS):
            if attempt:
                await sc.engine.sleeper(min(2.0**attempt, 30.0))
            try:
                # Creating is not idempotent in Graph: look for ours (by its unique name)
                # before every attempt but a first one that nothing could have preceded.
                if was_pending or attempt:
                    definition_id = await self._find(sc, body["displayName"])
                if definition_id is None:
                    created = await sc.client.create_access_review_definition(
                        AccessReviewDefinitionCreate.model_validate(body)
                    )
                    definition_id = created.id
                confirmed = await sc.client.get_access_review_definition(definition_id)
                break
            except GraphError as exc:
                if not is_transient(exc):
                    await sc.write(
                        partial(
                            record_outcome,
                            entry_id=entry_id,
                            status=EntryStatus.failed,
                            now=sc.engine.clock.now(),
                            error=exc,
                        )
                    )
                    raise
                last = exc
                definition_id = None
        else:
            assert last is not None

            await sc.write(
                partial(
                    record_outcome,
                    entry_id=entry_id,
                    status=EntryStatus.failed,
                    now=sc.engine.clock.now(),
                    error=last,
                )
            )
            raise last

        await sc.write(
            partial(
                record_outcome,
                entry_id=entry_id,
                status=EntryStatus.applied,
                now=sc.engine.clock.now(),
                outcome={"definition_id": confirmed.id, "status": confirmed.status},
                request_id=confirmed.id,
            )
        )

    async def _find(self, sc: StepContext, display_name: str) -> str | None:
        async for definition in sc.client.iter_access_review_definitions(display_name=display_name):
            return definition.id
        return None


register("create_access_reviews", CreateAccessReviews())
