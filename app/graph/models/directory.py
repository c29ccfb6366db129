"""Directory objects: users, groups, service principals, the organization."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.graph.models._base import ODATA_TYPE, GraphModel

PrincipalType = Literal["user", "group", "servicePrincipal", "unknown"]

_PRINCIPAL_TYPES: dict[str, PrincipalType] = {
    "#microsoft.graph.user": "user",
    "#microsoft.graph.group": "group",
    "#microsoft.graph.serviceprincipal": "servicePrincipal",
}


class DirectoryObject(GraphModel):
    """Any directory object; ``@odata.type`` says which (reference §4.1: there is no
    ``principalType`` property in v1.0, so this is how principals are classified)."""

    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)
    id: str
    display_name: str | None = None
    user_principal_name: str | None = None
    mail: str | None = None

    @property
    def principal_type(self) -> PrincipalType:
        key = (self.odata_type or "").casefold()
        if key and not key.startswith("#"):
            key = "#" + key
        return _PRINCIPAL_TYPES.get(key, "unknown")


class ObjectIdentity(GraphModel):
    sign_in_type: str | None = None
    issuer: str | None = None
    issuer_assigned_id: str | None = None


MICROSOFT_ACCOUNT_ISSUER = "MicrosoftAccount"


class User(DirectoryObject):
    # ``GET /users/{id}`` carries no ``@odata.type``; what it returns is a user by definition.
    odata_type: str | None = Field(default="#microsoft.graph.user", alias=ODATA_TYPE)
    account_enabled: bool | None = None
    user_type: str | None = None
    """``Member`` or ``Guest``."""
    identities: list[ObjectIdentity] = Field(default_factory=list)
    """Only returned when ``$select``ed."""
    on_premises_sync_enabled: bool | None = None
    """``true`` while synced from an on-premises directory; ``null`` for a cloud-only account.
    Only returned when ``$select``ed."""

    @property
    def signs_in_with_microsoft_account(self) -> bool:
        """A personal (consumer) Microsoft account: it cannot satisfy MFA on activation."""
        return any(i.issuer == MICROSOFT_ACCOUNT_ISSUER for i in self.identities)


class Group(DirectoryObject):
    odata_type: str | None = Field(default="#microsoft.graph.group", alias=ODATA_TYPE)
    is_assignable_to_role: bool | None = None
    security_enabled: bool | None = None
    mail_enabled: bool | None = None
    group_types: list[str] = Field(default_factory=list)


class VerifiedDomain(GraphModel):
    name: str | None = None
    is_default: bool | None = None
    is_initial: bool | None = None
    type: str | None = None
    capabilities: str | None = None


class Organization(GraphModel):
    id: str
    display_name: str | None = None
    tenant_type: str | None = None
    verified_domains: list[VerifiedDomain] = Field(default_factory=list)

    @property
    def default_domain(self) -> str | None:
        return next((domain.name for domain in self.verified_domains if domain.is_default), None)
