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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientSecretAuth(_Strict):
    kind: Literal["client_secret"]
    tenant_id: UUID
    client_id: UUID
    client_secret: SecretStr


class CertificateAuth(_Strict):
    kind: Literal["certificate"]
    tenant_id: UUID
    client_id: UUID
    certificate_pem: SecretStr = Field(description="PEM with the private key and certificate")
    certificate_password: SecretStr | None = None


class ManagedIdentityAuth(_Strict):
    kind: Literal["managed_identity"]
    client_id: UUID | None = Field(
        default=None, description="user-assigned identity; omit for system"
    )


class DefaultChainAuth(_Strict):
    kind: Literal["default"]
    tenant_id: UUID | None = None


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


Binding = Annotated[GroupBinding | UsersBinding | RoleOwnersBinding, Field(discriminator="kind")]

KNOWN_BINDINGS = ("it_platform_team", "security_team", "managers", "role_owners", "helpdesk")


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
    write_quota: int = Field(default=3000, ge=1, description="writes allowed per window")
    write_window_seconds: float = Field(default=150.0, gt=0)
    pacing_share: float = Field(
        default=0.95, gt=0, le=1, description="share of the write quota the product uses"
    )
    min_change_interval_seconds: float = Field(
        default=300.0, ge=0, description="Graph refuses a change to one assignment within 5 minutes"
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
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError("must be an absolute http(s) URL such as https://graph.microsoft.com/v1.0")
    if parsed.scheme == "http" and not is_local_url(url):
        raise ValueError("plain http is only allowed for a simulated tenant on a loopback address")
    if parsed.query or parsed.fragment:
        raise ValueError("must not carry a query string or fragment")
    return url.rstrip("/")


BindingName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class TenantSpec(_Strict):
    """Everything a tenant is created with (the body of ``POST /api/v1/tenants``)."""

    name: str = Field(min_length=1, max_length=200)
    graph_base_url: str = GRAPH_BASE_URL
    auth: TenantAuth
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
    def _url(cls, value: str) -> str:
        return validate_graph_base_url(value)

    @field_validator("break_glass_ids")
    @classmethod
    def _distinct(cls, value: list[UUID]) -> list[UUID]:
        if len(set(value)) != len(value):
            raise ValueError("break-glass ids must be distinct")
        return value

    @model_validator(mode="after")
    def _simulated_only_without_auth(self) -> TenantSpec:
        if self.auth.kind == "none" and not is_local_url(self.graph_base_url):
            raise ValueError(
                "auth kind 'none' is only for a simulated tenant on a loopback or reserved address"
            )
        return self
