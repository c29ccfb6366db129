"""Built-in Entra role template ids (id == templateId for built-in roles).

Source: the Entra built-in roles page (``MicrosoftDocs/entra-docs``,
``docs/identity/role-based-access-control/permissions-reference.md``, 2026-01). ``privileged``
follows that page's PRIVILEGED label; v1.0 has no ``isPrivileged`` property, so the list is
static.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltInRole:
    id: str
    name: str
    privileged: bool


GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
SHAREPOINT_ADMINISTRATOR = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"
HYBRID_IDENTITY_ADMINISTRATOR = "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2"

BUILT_IN_ROLES: tuple[BuiltInRole, ...] = (
    BuiltInRole(GLOBAL_ADMINISTRATOR, "Global Administrator", True),
    BuiltInRole(
        PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, "Privileged Authentication Administrator", True
    ),
    BuiltInRole(PRIVILEGED_ROLE_ADMINISTRATOR, "Privileged Role Administrator", True),
    BuiltInRole(APPLICATION_ADMINISTRATOR, "Application Administrator", True),
    BuiltInRole(CLOUD_APPLICATION_ADMINISTRATOR, "Cloud Application Administrator", True),
    BuiltInRole(USER_ADMINISTRATOR, "User Administrator", True),
    BuiltInRole("c4e39bd9-1100-46d3-8c65-fb160da0071f", "Authentication Administrator", True),
    BuiltInRole("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator", True),
    BuiltInRole("b1be1c3e-b65d-4f19-8427-f6fa0d97feb9", "Conditional Access Administrator", True),
    BuiltInRole("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator", True),
    BuiltInRole("3a2c62db-5318-420d-8d74-23affee5d9d5", "Intune Administrator", True),
    BuiltInRole(EXCHANGE_ADMINISTRATOR, "Exchange Administrator", False),
    BuiltInRole(SHAREPOINT_ADMINISTRATOR, "SharePoint Administrator", False),
    BuiltInRole("b0f54661-2d74-4c50-afa3-1ec803f12efe", "Billing Administrator", False),
    BuiltInRole("4a5d8f65-41da-4de4-8968-e035b65339cf", "Reports Reader", False),
    BuiltInRole("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader", True),
    BuiltInRole("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader", True),
    BuiltInRole(HYBRID_IDENTITY_ADMINISTRATOR, "Hybrid Identity Administrator", True),
    BuiltInRole("fdd7a751-b60b-444a-984c-02652fe8fa1c", "Groups Administrator", False),
    BuiltInRole(
        "8424c6f0-a189-499e-bbd0-26c1753c96d4", "Attribute Assignment Administrator", False
    ),
    BuiltInRole("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Directory Readers", False),
    BuiltInRole("790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b", "Message Center Reader", False),
    BuiltInRole("75934031-6c7e-415a-99d7-48dbd49e875e", "Usage Summary Reports Reader", False),
)

ROLES_BY_ID: dict[str, BuiltInRole] = {role.id: role for role in BUILT_IN_ROLES}

# CISA SCuBA's "highly privileged roles" for MS.AAD.7 (cisagov/ScubaGear baselines/aad.md,
# section "Highly Privileged Roles", as Maester's Get-MtRole -CisaHighlyPrivilegedRoles lists
# them). Exchange and SharePoint Administrator are in it though Entra does not label them
# PRIVILEGED.
CISA_HIGHLY_PRIVILEGED: tuple[str, ...] = (
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    SHAREPOINT_ADMINISTRATOR,
    EXCHANGE_ADMINISTRATOR,
    HYBRID_IDENTITY_ADMINISTRATOR,
    APPLICATION_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
)

# PIM refuses to remove the last active assignment of these roles.
LAST_ACTIVE_PROTECTED: frozenset[str] = frozenset(
    {GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR}
)


def role_name(role_id: str) -> str:
    role = ROLES_BY_ID.get(role_id.lower())
    return role.name if role else role_id
