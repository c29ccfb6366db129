"""``POST /users/{id}/sendMail`` (reference §10): 202 with no body; the message goes to the outbox.

A message saved to Sent Items (the default) can be found again with
``GET /users/{id}/mailFolders/sentitems/messages?$filter=singleValueExtendedProperties/any(ep:
ep/id eq '…' and ep/value eq '…')`` - Graph's documented way to find a message by a custom
extended property, and how a sender verifies a send whose answer was lost.

Error codes are Exchange's: ``ErrorInvalidUser`` for an unknown sender,
``MailboxNotEnabledForRESTAPI`` for a user without an Exchange Online mailbox,
``ErrorInvalidRecipients`` when no valid recipient is given, and
``ErrorMimeContentInvalidBase64String`` for a MIME body that is not base64 (§10).
"""

from __future__ import annotations

import base64
import binascii
import re
from email import message_from_bytes
from email.utils import getaddresses
from typing import Any

from app.simulator import errors, permissions
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.errors import GraphError
from app.simulator.routes import common
from app.simulator.state import OutboxMessage, User


def _get(body: dict[str, Any], name: str) -> Any:
    """Graph matches action parameters case-insensitively: the docs send ``message``, the SDKs
    ``Message`` (the CSDL parameter names are PascalCase)."""
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return None


def _sender(ctx: SimContext, key: str) -> User:
    user = ctx.state.user_by_id_or_upn(key)
    if user is None:
        raise GraphError(404, errors.ERROR_INVALID_USER, f"The requested user '{key}' is invalid.")
    if not user.has_mailbox or not user.mail:
        raise GraphError(
            404,
            errors.MAILBOX_NOT_ENABLED,
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return user


def _addresses(message: dict[str, Any], name: str) -> list[str]:
    recipients = _get(message, name) or []
    if not isinstance(recipients, list):
        raise GraphError(400, "ErrorInvalidRecipients", f"'{name}' must be a list of recipients.")
    result = []
    for recipient in recipients:
        address = _get(recipient, "emailAddress") if isinstance(recipient, dict) else None
        value = _get(address, "address") if isinstance(address, dict) else None
        if not isinstance(value, str) or "@" not in value:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        result.append(value)
    return result


def _save_flag(value: object) -> bool:
    # The doc sample sends "false" as a string; Graph accepts both forms.
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise errors.bad_request("'saveToSentItems' must be a boolean.")


def _extended_properties(message: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for prop in _get(message, "singleValueExtendedProperties") or []:
        prop_id = _get(prop, "id") if isinstance(prop, dict) else None
        value = _get(prop, "value") if isinstance(prop, dict) else None
        if not isinstance(prop_id, str) or not isinstance(value, str):
            raise errors.bad_request(
                "singleValueExtendedProperties entries need a string id and value.",
                "ErrorInvalidExtendedProperty",
            )
        found[prop_id] = value
    return found


def _from_json(
    body: object,
) -> tuple[list[str], list[str], list[str], str, str, str, bool, list[str]]:
    message = _get(body, "message") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(message, dict):
        raise errors.bad_request(
            "The request body must carry a 'message' object.", "ErrorInvalidArgument"
        )
    to, cc, bcc = (
        _addresses(message, n) for n in ("toRecipients", "ccRecipients", "bccRecipients")
    )
    if not (to or cc or bcc):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is required.")
    content = _get(message, "body") or {}
    if not isinstance(content, dict):
        raise errors.bad_request("'message.body' must be an object.", "ErrorInvalidArgument")
    content_type = str(_get(content, "contentType") or "Text")
    if content_type.lower() not in {"text", "html"}:
        raise errors.bad_request(
            "message.body.contentType must be Text or HTML.", "ErrorInvalidArgument"
        )
    subject = _get(message, "subject") or ""
    if not isinstance(subject, str):
        raise errors.bad_request("'message.subject' must be a string.", "ErrorInvalidArgument")
    attachments = []
    for attachment in _get(message, "attachments") or []:
        if not isinstance(attachment, dict) or not _get(attachment, "name"):
            raise errors.bad_request("Each attachment needs a name.", "ErrorInvalidArgument")
        try:
            base64.b64decode(str(_get(attachment, "contentBytes") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(
                "Attachment contentBytes must be base64.", "ErrorInvalidArgument"
            ) from None
        attachments.append(str(_get(attachment, "name")))
    return (
        to,
        cc,
        bcc,
        subject,
        "HTML" if content_type.lower() == "html" else "Text",
        str(_get(content, "content") or ""),
        _save_flag(_get(body, "saveToSentItems")),
        attachments,
    )


def _from_mime(raw: str) -> tuple[list[str], list[str], list[str], str, str, str, bool, list[str]]:
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise GraphError(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from None
    parsed = message_from_bytes(decoded)

    def addresses(header: str) -> list[str]:
        return [address for _, address in getaddresses(parsed.get_all(header, [])) if address]

    to, cc, bcc = addresses("To"), addresses("Cc"), addresses("Bcc")
    if not (to or cc or bcc):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is required.")
    payload = parsed.get_payload(decode=True)
    text = (
        payload.decode(errors="replace")
        if isinstance(payload, bytes)
        else str(parsed.get_payload())
    )
    content_type = "HTML" if parsed.get_content_type() == "text/html" else "Text"
    return to, cc, bcc, str(parsed.get("Subject", "")), content_type, text, True, []


def send_mail(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    sender = _sender(ctx, params["id"])
    content_type = (request.header("content-type") or "").lower()
    if content_type.startswith("text/plain"):
        if not isinstance(request.body, str):
            raise GraphError(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        parts = _from_mime(request.body)
    else:
        parts = _from_json(common.json_body(request))
    to, cc, bcc, subject, kind, text, save, attachments = parts
    message = _get(request.body, "message") if isinstance(request.body, dict) else None
    properties = _extended_properties(message) if isinstance(message, dict) else {}
    ctx.state.outbox.append(
        OutboxMessage(
            id=ctx.state.ids.guid(),
            extended_properties=properties,
            seq=ctx.state.next_seq(),
            at=ctx.clock.now(),
            sender_id=sender.id,
            sender_address=sender.mail or sender.user_principal_name,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            content_type=kind,
            body=text,
            save_to_sent_items=save,
            attachment_names=attachments,
        )
    )
    return GraphResponse(202)


_PROPERTY_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '((?:[^']|'')*)'"
    r"\s+and\s+\1/value eq '((?:[^']|'')*)'\s*\)$",
    re.IGNORECASE,
)
_SENT_ITEMS = {"sentitems"}


def sent_messages(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    user = _sender(ctx, params["id"])
    if params["folder"].lower() not in _SENT_ITEMS:
        raise errors.not_found(
            f"The mail folder '{params['folder']}' is not modelled by this tenant.",
            "ErrorItemNotFound",
        )
    messages = [m for m in ctx.state.outbox if m.sender_id == user.id and m.save_to_sent_items]
    text = request.params.get("$filter")
    if text:
        match = _PROPERTY_FILTER.match(text.strip())
        if match is None:
            raise errors.bad_request(
                "Only singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value eq '…') "
                "is supported as a filter here.",
                "ErrorInvalidUrlQueryFilter",
            )
        prop_id, value = (part.replace("''", "'") for part in match.group(2, 3))
        messages = [
            m
            for m in messages
            if any(
                k.lower() == prop_id.lower() and v == value
                for k, v in m.extended_properties.items()
            )
        ]
    values = [
        {
            "id": m.id,
            "subject": m.subject,
            "sentDateTime": m.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toRecipients": [{"emailAddress": {"address": a}} for a in m.to],
        }
        for m in messages
    ]
    context = f"{request.base_url}/$metadata#users('{user.id}')/mailFolders('sentitems')/messages"
    return GraphResponse(200, {"@odata.context": context, "value": values})


def register(router: Router) -> None:
    for path in ("users/{id}/sendMail", "users/{id}/microsoft.graph.sendMail"):
        router.add("POST", path, send_mail, any_of=permissions.MAIL_SEND)
    router.add(
        "GET",
        "users/{id}/mailFolders/{folder}/messages",
        sent_messages,
        any_of=permissions.MAIL_READ,
    )
