"""Alert the security team: PIM mails them on every assignment and activation of the roles.

Each change is a journaled PATCH of one ``Notification_*`` rule with the rule it replaces
recorded first, so rollback restores the rules exactly (reference §7.3, CISA MS.AAD.7.7-7.9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.domain.plan import MailboxRef, SetNotificationRulesStep
from app.domain.roles import role_name
from app.domain.rules import desired_notification_rules
from app.domain.tenant import Binding, MailboxBinding
from app.engine.live import role_rules
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.steps.policy import RuleChangeError, apply_rule_changes
from app.graph.errors import GraphError


class MailboxBindingError(Exception):
    pass


def resolve_mailboxes(refs: Sequence[MailboxRef], bindings: Mapping[str, Binding]) -> list[str]:
    """The addresses ``refs`` name, in order, each once."""
    addresses: list[str] = []
    for ref in refs:
        if ref.address is not None:
            addresses.append(ref.address)
            continue
        assert ref.binding is not None
        binding = bindings.get(ref.binding)
        if not isinstance(binding, MailboxBinding):
            raise MailboxBindingError(
                f"binding {ref.binding!r} is not a mailbox binding of this tenant"
            )
        addresses += binding.addresses
    seen: set[str] = set()
    unique = []
    for address in addresses:
        if address.casefold() not in seen:
            seen.add(address.casefold())
            unique.append(address)
    return unique


class SetNotificationRules:
    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, SetNotificationRulesStep)
        try:
            recipients = resolve_mailboxes(step.recipients, sc.bindings)
        except MailboxBindingError as exc:
            return StepResult.failed(str(exc))
        for role_uuid in sc.spec.role_ids(step.roles):
            role_id = str(role_uuid)
            reason = await sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)
            try:
                policy_id, current = await role_rules(sc.client, role_id)
                changes = desired_notification_rules(current, step.rules, recipients)
                await apply_rule_changes(
                    sc, role_id=role_id, policy_id=policy_id, current=current, changes=changes
                )
            except RuleChangeError as exc:
                return StepResult.failed(str(exc))
            except GraphError as exc:
                return StepResult.failed(f"{role_name(role_id)}: {exc.code}: {exc.message}")
        return StepResult.done()


register("set_notification_rules", SetNotificationRules())
