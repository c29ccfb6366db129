"""Playbook step 3: apply each target role's activation settings, recording what they replace."""

from __future__ import annotations

from uuid import UUID

from app.domain.plan import ApplyRoleSettingsStep
from app.domain.roles import role_name
from app.domain.rules import RuleConflictError, desired_activation_rules
from app.engine.live import role_rules
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.steps.policy import RuleChangeError, apply_rule_changes
from app.graph.errors import GraphError


class ApplyRoleSettings:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, ApplyRoleSettingsStep)
        for role_id in sc.spec.role_ids(step.roles):
            reason = await sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)
            target = sc.spec.role(role_id)
            assert target is not None
            settings = target.settings.merged(step.settings)
            try:
                policy_id, current = await role_rules(sc.client, str(role_id))
                changes = desired_activation_rules(current, settings)
                await apply_rule_changes(
                    sc, role_id=str(role_id), policy_id=policy_id, current=current, changes=changes
                )
            except RuleConflictError as exc:
                return StepResult.failed(f"{role_name(str(role_id))}: {exc}")
            except RuleChangeError as exc:
                return StepResult.failed(str(exc))
            except GraphError as exc:
                return StepResult.failed(_graph_reason(role_id, exc))
        return StepResult.done()


def _graph_reason(role_id: UUID, exc: GraphError) -> str:
    name = role_name(str(role_id))
    return f"{name}: reading its PIM settings failed: {exc.code or exc.status}: {exc.message}"


register("apply_role_settings", ApplyRoleSettings())
