"""The comms step: one mail per converted admin per phase, exactly once across crashes.

Each mail carries its idempotency key in a single-value extended property and is saved to the
sender's Sent Items; when a send's outcome is unknown (a crash, a lost answer), the key is
looked up there before anything is sent again.
"""

from __future__ import annotations

from functools import partial

from sqlmodel import Session

from app.db.models import Tenant, WorkItem
from app.db.repos.work_items import WorkItemRepository
from app.domain.journal import EntryStatus, Operation, mail_key
from app.domain.plan import SendCommsStep
from app.domain.progress import WorkItemState
from app.engine.journal import DONE_STATUSES, open_intent, record_outcome
from app.engine.steps.base import StepContext, StepResult, register
from app.engine.transient import ENGINE_ATTEMPTS, is_transient
from app.graph.errors import GraphError
from app.graph.models import (
    EmailAddress,
    ItemBody,
    MailMessage,
    Recipient,
    SingleValueExtendedProperty,
)
from app.services.comms import CommsRenderer, CommsRenderError, comms_context
from app.services.comms_preview import comms_page_url, recipients_from_items

# Our own property in the message's extended properties (a fixed GUID names our namespace).
MAIL_KEY_PROPERTY = "String {8f2b1c3e-6a44-4c39-9d71-4f0a9b2e7d15} Name PimRolloutMailKey"


class SendComms:
    def __init__(self, renderer: CommsRenderer | None = None) -> None:
        self.renderer = renderer or CommsRenderer()

    async def run(self, sc: StepContext) -> StepResult:
        step = sc.step
        assert isinstance(step, SendCommsStep)
        if not sc.comms.sender:
            return StepResult.failed("the tenant has no comms sender mailbox (comms.sender)")

        def load(session: Session) -> tuple[list[WorkItem], Tenant | None]:
            # Only roles that became just-in-time are announced: a role kept Active (the last
            # active GA/PRA holder) does not change for its holder, and the mail would say it did.
            items = WorkItemRepository(session).list_items(
                sc.plan_id, phase_key=sc.phase.key, states=[WorkItemState.done.value]
            )
            return list(items), session.get(Tenant, sc.tenant_id)

        items, tenant = await sc.read(load)
        # Each mail lists only the roles its recipient held and now activates.
        recipients = recipients_from_items(
            items, before_step=sc.step_index, role_order=[str(r) for r in sc.spec.role_ids()]
        )
        if not recipients:
            return StepResult.done("no converted users to mail")
        try:
            directory = {
                o.id: o for o in await sc.client.get_directory_objects([r.id for r in recipients])
            }
        except GraphError as exc:
            return StepResult.failed(f"looking up recipients failed: {exc.code}: {exc.message}")
        page_url = comms_page_url(sc.engine.public_url, sc.plan_id, sc.phase.key)
        sent = skipped = 0
        for recipient in recipients:
            principal_id = recipient.id
            reason = await sc.stop_reason()
            if reason:
                return StepResult.stopped(reason)
            person = directory.get(principal_id)
            address = (person.mail or person.user_principal_name) if person else None
            if not address:
                skipped += 1
                sc.notes.append(f"no mail address for {recipient.name or principal_id}")
                continue
            try:
                context = comms_context(
                    spec=sc.spec,
                    phase_key=sc.phase.key,
                    comms=sc.comms,
                    tenant_name=tenant.name if tenant else "",
                    recipient_name=recipient.name,
                    roles=list(recipient.roles),
                    effective_from=sc.engine.clock.now(),
                    page_url=page_url,
                )
                rendered = self.renderer.render(step.template, step.subject, context)
            except CommsRenderError as exc:
                return StepResult.failed(f"the comms could not be rendered: {exc}")
            try:
                if await self._send_once(
                    sc, principal_id, address, rendered.subject, rendered.html
                ):
                    sent += 1
            except GraphError as exc:
                return StepResult.failed(
                    f"sending the comms to {address} failed: {exc.code}: {exc.message}"
                )
        return StepResult.done(
            f"comms: {sent} sent" + (f", {skipped} without an address" if skipped else "")
        )

    async def _send_once(
        self, sc: StepContext, principal_id: str, address: str, subject: str, html: str
    ) -> bool:
        sender = sc.comms.sender
        assert sender is not None
        key = mail_key(sc.plan_id, sc.phase.key, principal_id)
        intent = partial(
            open_intent,
            key=key,
            plan_id=sc.plan_id,
            phase_key=sc.phase.key,
            step_index=sc.step_index,
            operation=Operation.send_mail,
            target={"principal_id": principal_id, "to": address, "sender": sender},
            prior_state=None,
            desired_state={"subject": subject},
            fencing_token=sc.lease.token,
            now=sc.engine.clock.now(),
        )
        entry, was_pending = await sc.write(intent)
        entry_id = entry.id
        assert entry_id is not None
        if entry.status in DONE_STATUSES:
            return False
        message = MailMessage(
            subject=subject,
            body=ItemBody(content_type="HTML", content=html),
            to_recipients=[Recipient(email_address=EmailAddress(address=address))],
            single_value_extended_properties=[
                SingleValueExtendedProperty(id=MAIL_KEY_PROPERTY, value=key)
            ],
        )
        last: GraphError | None = None
        for attempt in range(ENGINE_ATTEMPTS):
            if attempt:
                await sc.engine.sleeper(min(2.0**attempt, 30.0))
            try:
                # A send that may have happened (an earlier run, a lost answer) is looked up
                # in Sent Items first: a second mail is what exactly-once forbids.
                if (was_pending or attempt) and await sc.client.find_sent_message(
                    sender, MAIL_KEY_PROPERTY, key
                ):
                    await self._record(
                        sc, entry_id, EntryStatus.applied, {"verified_in_sent_items": True}
                    )
                    return False
                await sc.client.send_mail(sender, message, save_to_sent_items=True)
                await self._record(sc, entry_id, EntryStatus.applied, {"to": address})
                return True
            except GraphError as exc:
                if not is_transient(exc):
                    await self._record(sc, entry_id, EntryStatus.failed, None, exc)
                    raise
                last = exc
        assert last is not None
        await self._record(sc, entry_id, EntryStatus.failed, None, last)
        raise last

    async def _record(
        self,
        sc: StepContext,
        entry_id: int,
        status: EntryStatus,
        outcome: dict[str, object] | None,
        error: GraphError | None = None,
    ) -> None:
        await sc.write(
            partial(
                record_outcome,
                entry_id=entry_id,
                status=status,
                now=sc.engine.clock.now(),
                outcome=outcome,
                error=error,
            )
        )


register("send_comms", SendComms())
