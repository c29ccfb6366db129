"""What a tenant is configured with: Graph endpoint, auth block, break-glass, bindings, comms.

Secrets (client secret, certificate) are ``SecretStr`` so they never print; the API never
returns them and the store keeps them encrypted.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlparse
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.domain.clouds import GLOBAL, allowed_graph_urls, graph_endpoint_for
from app.domain.credentials import (
    check_certificate_password,
    check_certificate_pem,
    check_client_secret,
)
from app.domain.mailbox import check_address

GRAPH_BASE_URL = GLOBAL.base_url
MAX_URL_LENGTH = 2000
TRUSTED_AUTH = "trusted_auth"
"""Validation context key: the auth block is the stored one, checked when it was given (an
update that leaves it alone must not depend on it; its secrets are placeholders then)."""
TRUSTED_URL = "trusted_url"
"""Validation context key: neither ``auth`` nor ``graph_base_url`` changes in this update."""


def _trusted(info: ValidationInfo, key: str) -> bool:
    return bool(info.context and info.context.get(key))


class _Strict(BaseModel):
    # No inf/NaN: JSON has no such numbers, and the database's JSON refuses them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _not_nil(value: UUID) -> UUID:
    if value.int == 0:
        raise ValueError("is the all-zero GUID (a placeholder): give the real id")
    return value


EntraId = Annotated[UUID, AfterValidator(_not_nil)]
"""A tenant's or an application's id in Entra: a GUID, never the all-zero placeholder."""


class ClientSecretAuth(_Strict):
    kind: Literal["client_secret"]
    tenant_id: EntraId = Field(description="the Entra tenant (directory) id")
    client_id: EntraId = Field(description="the app registration's application (client) id")
    client_secret: SecretStr = Field(
        description="the secret's Value (not its Secret ID), as shown when it was created"
    )

    @field_validator("client_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if not _trusted(info, TRUSTED_AUTH):
            check_client_secret(value.get_secret_value())
        return value


class CertificateAuth(_Strict):
    kind: Literal["certificate"]
    tenant_id: EntraId = Field(description="the Entra tenant (directory) id")
    client_id: EntraId = Field(description="the app registration's application (client) id")
    certificate_pem: SecretStr = Field(
        description="PEM with the RSA private key and the certificate registered on the app"
    )
    certificate_password: SecretStr | None = Field(
        default=None, validate_default=True, description="only for an encrypted private key"
    )

    @field_validator("certificate_pem")
    @classmethod
    def _pem_parses(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if not _trusted(info, TRUSTED_AUTH):
            check_certificate_pem(value.get_secret_value())
        return value

    @field_validator("certificate_password")
    @classmethod
    def _password_opens_the_key(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        pem = info.data.get("certificate_pem")
        if isinstance(pem, SecretStr) and not _trusted(info, TRUSTED_AUTH):
            # (``pem`` is absent when the PEM itself was refused)
            check_certificate_password(
                pem.get_secret_value(), value.get_secret_value() if value is not None else None
            )
        return value


class ManagedIdentityAuth(_Strict):
    kind: Literal["managed_identity"]
    client_id: EntraId | None = Field(
        default=None, description="user-assigned identity; omit for system"
    )


class DefaultChainAuth(_Strict):
    kind: Literal["default"]
    tenant_id: EntraId | None = None


class NoAuth(_Strict):
    """Only for a simulated tenant: sends a placeholder bearer token."""

    kind: Literal["none"]


TenantAuth = Annotated[
    ClientSecretAuth | CertificateAuth | ManagedIdentityAuth | DefaultChainAuth | NoAuth,
    Field(discriminator="kind"),
]

SECRET_AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "client_secret": ("client_secret",),
    "certificate": ("certificate_pem", "certificate_password"),
}


class GroupBinding(_Strict):
    kind: Literal["group"]
    id: UUID


class UsersBinding(_Strict):
    kind: Literal["users"]
    ids: list[UUID] = Field(min_length=1)


class RoleOwnersBinding(_Strict):
    """Who reviews each role: Entra has no 'role owner', so the tenant names one user per role."""

    kind: Literal["role_owners"]
    owners: dict[UUID, UUID] = Field(
        default_factory=dict, description="role template id -> user id"
    )
    fallback: UUID | None = None


class MailboxBinding(_Strict):
    """E-mail addresses (a shared mailbox, a distribution list) that PIM notifications go to;
    they need not be directory objects."""

    kind: Literal["mailbox"]
    addresses: list[str] = Field(min_length=1, max_length=20)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            check_address(address)
        if len({a.casefold() for a in value}) != len(value):
            raise ValueError("addresses must be distinct")
        return value


Binding = Annotated[
    GroupBinding | UsersBinding | RoleOwnersBinding | MailboxBinding, Field(discriminator="kind")
]

KNOWN_BINDINGS = (
    "it_platform_team",
    "security_team",
    "managers",
    "role_owners",
    "helpdesk",
    "security_team_mailbox",
)


class HelpdeskContact(_Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("url")
    @classmethod
    def _web_link(cls, value: str | None) -> str | None:
        # The link lands in every admin's mail: only a web address, never javascript: or data:.
        return _web_url(value, "the helpdesk link")


def _web_url(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not value.lower().startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) address")
    return value


class CommsSettings(_Strict):
    sender: str | None = Field(
        default=None, description="user id or UPN of the mailbox that sends the comms"
    )
    helpdesk: HelpdeskContact | None = None
    activation_url: str = "https://portal.azure.com/#view/Microsoft_Azure_PIMCommon/ActivationMenuBlade/~/aadmigratedroles"

    @field_validator("activation_url")
    @classmethod
    def _web_link(cls, value: str) -> str:
        return _web_url(value, "the activation link") or value


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


class ProgressionWindow(_Strict):
    """Automatic progression may start work on these days between ``start`` and ``end``."""

    days: list[Weekday] = Field(min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> ProgressionWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start (windows do not cross midnight; use two)")
        return self


class AutomationSettings(_Strict):
    timezone: str = "UTC"
    windows: list[ProgressionWindow] = Field(
        default_factory=list, description="empty means automatic progression at any time"
    )
    frozen: bool = Field(default=False, description="freeze: no automatic progression at all")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Paris)"
            ) from None
        return value


class GraphLimits(_Strict):
    """How fast the product may talk to this tenant; defaults follow Graph's published limits."""

    max_concurrency: int = Field(default=8, ge=1, le=64)
    write_quota: int = Field(
        default=3000, ge=1, le=1_000_000, description="writes allowed per window"
    )
    write_window_seconds: float = Field(default=150.0, gt=0, le=86_400)
    pacing_share: float = Field(
        default=0.95, gt=0, le=1, description="share of the write quota the product uses"
    )
    min_change_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Graph refuses a change to one assignment within 5 minutes",
    )


# Names that never resolve on the internet (RFC 2606 / RFC 6761), used for in-process tenants.
_RESERVED_SUFFIXES = (".test", ".invalid", ".localhost", ".example")


def is_local_url(url: str) -> bool:
    """Loopback or a reserved name: the only places a simulated tenant may live."""
    host = (urlparse(url).hostname or "").lower()
    return (
        host in {"localhost", "::1"} or host.startswith("127.") or host.endswith(_RESERVED_SUFFIXES)
    )


def validate_graph_base_url(url: str) -> str:
    """Shape only; which hosts a credential may reach is :func:`check_graph_base_url`."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError("must be an absolute http(s) URL such as https://graph.microsoft.com/v1.0")
    if parsed.scheme == "http" and not is_local_url(url):
        raise ValueError("plain http is only allowed for a simulated tenant on a loopback address")
    if parsed.query or parsed.fragment:
        raise ValueError("must not carry a query string or fragment")
    return url.rstrip("/")


def check_graph_base_url(url: str, auth_kind: str) -> str:
    """A real credential's token only goes to Microsoft Graph; ``none`` only to a local one.

    Returns the URL to store (for a Graph cloud: its canonical form, e.g. a lower-case host).
    """
    if auth_kind == "none":
        if not is_local_url(url):
            raise ValueError(
                "auth kind 'none' is only for a simulated tenant on a loopback or reserved address"
            )
        return url
    endpoint = graph_endpoint_for(url)
    if endpoint is None:
        raise ValueError(
            f"with a {auth_kind} credential this must be a Microsoft Graph endpoint, so that "
            f"the tenant's token goes nowhere else: one of {allowed_graph_urls()}"
        )
    return endpoint.base_url


BindingName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class TenantSpec(_Strict):
    """Everything a tenant is created with (the body of ``POST /api/v1/tenants``)."""

    name: str = Field(min_length=1, max_length=200)
    # ``auth`` comes first so that the check of ``graph_base_url`` can see its kind.
    auth: TenantAuth
    graph_base_url: str = Field(
        default=GRAPH_BASE_URL,
        validate_default=True,
        max_length=MAX_URL_LENGTH,
        description="Microsoft Graph of the tenant's cloud (global, US Gov L4/L5, China), "
        "/v1.0; a loopback address only for a simulated tenant with auth kind 'none'",
    )
    break_glass_ids: list[UUID] = Field(default_factory=list, max_length=10)
    bindings: dict[BindingName, Binding] = Field(default_factory=dict)
    comms: CommsSettings = CommsSettings()
    automation: AutomationSettings = AutomationSettings()
    graph_limits: GraphLimits = GraphLimits()

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("must not start or end with spaces")
        return value

    @field_validator("graph_base_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        url = validate_graph_base_url(value)
        auth = info.data.get("auth")
        if auth is None or _trusted(info, TRUSTED_URL):
            # ``auth`` was refused itself (nothing to check against), or neither changes.
            return url
        return check_graph_base_url(url, auth.kind)

    @field_validator("break_glass_ids")
    @classmethod
    def _distinct(cls, value: list[UUID]) -> list[UUID]:
        if len(set(value)) != len(value):
            raise ValueError("break-glass ids must be distinct")
        return value
