"""Playbook step 5: approval to activate, from approvers who cannot activate the role themselves."""

from __future__ import annotations

from app.domain.plan import RequireApprovalStep
from app.domain.roles import role_name
from app.domain.rules import desired_approval_rule
from app.domain.trust import approver_problems
from app.engine.live import active_holders, eligible_principals, resolve_approvers, role_rules
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.steps.policy import RuleChangeError, apply_rule_changes
from app.graph.errors import GraphError


class RequireApproval:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, RequireApprovalStep)
        for rule in step.rules:
            try:
                approvers = await resolve_approvers(sc.client, rule.approvers, sc.bindings)
            except GraphError as exc:
                return StepResult.failed(f"resolving approvers failed: {exc.code}: {exc.message}")
            for role_uuid in sc.spec.role_ids(rule.roles):
                role_id = str(role_uuid)
                reason = await sc.stop_reason()
                if reason:
                    return StepResult.stopped(reason)
                try:
                    # Re-checked now, not only at preflight: membership may have changed since.
                    holders = await active_holders(sc.client, role_id) | {
                        principal for principal, _ in await eligible_principals(sc.client, role_id)
                    }
                    problems = approver_problems(
                        role_id=role_id,
                        approvers=approvers.people,
                        min_approvers=rule.min_approvers,
                        holders=holders,
                    )
                    if problems:
                        return StepResult.failed("; ".join(p.message for p in problems))
                    policy_id, current = await role_rules(sc.client, role_id)
                    desired = desired_approval_rule(
                        current,
                        approvers=approvers.subjects,
                        timeout_days=rule.approval_timeout_days,
                        approver_justification=rule.require_approver_justification,
                    )
                    changes = {} if desired is None else {desired["id"]: desired}
                    await apply_rule_changes(
                        sc, role_id=role_id, policy_id=policy_id, current=current, changes=changes
                    )
                except RuleChangeError as exc:
                    return StepResult.failed(str(exc))
                except GraphError as exc:
                    return StepResult.failed(f"{role_name(role_id)}: {exc.code}: {exc.message}")
        return StepResult.done()


register("require_approval", RequireApproval())
