"""``sendMail`` bodies (reference §10)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.graph.models._base import GraphInput


class EmailAddress(GraphInput):
    address: str
    name: str | None = None


class Recipient(GraphInput):
    email_address: EmailAddress


class ItemBody(GraphInput):
    content_type: Literal["Text", "HTML", "text", "html"] = "Text"
    content: str


class InternetMessageHeader(GraphInput):
    name: str
    value: str


class SingleValueExtendedProperty(GraphInput):
    """A MAPI property on a message; ``id`` like ``String {guid} Name SomeName``."""

    id: str
    value: str


class MailMessage(GraphInput):
    subject: str
    body: ItemBody
    to_recipients: list[Recipient] = Field(default_factory=list)
    cc_recipients: list[Recipient] | None = None
    bcc_recipients: list[Recipient] | None = None
    reply_to: list[Recipient] | None = None
    internet_message_headers: list[InternetMessageHeader] | None = None
    single_value_extended_properties: list[SingleValueExtendedProperty] | None = None


class SendMailRequest(GraphInput):
    """Body of ``POST /users/{id}/sendMail``; Graph's default for ``saveToSentItems`` is true."""

    message: MailMessage
    save_to_sent_items: bool | None = None
