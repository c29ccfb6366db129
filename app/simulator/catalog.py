"""Built-in directory roles and licence SKUs of the simulated tenant.

Role template ids, names, descriptions and PRIVILEGED labels are copied from the Entra built-in
roles page (``MicrosoftDocs/entra-docs`` ``docs/identity/role-based-access-control/
permissions-reference.md`` @ 00fe95d6, ms.date 2026-01-20, "All roles" table). For built-in roles
``id == templateId`` (reference §3).

Note: that page gives *Attribute Assignment Administrator* the id 58a13ea3-…; 8424c6f0-… is
*Attribute Definition Administrator* (the Graph doc samples call 8424c6f0 "Attribute Assignment
Admin" in their justification text, which is the doc's slip, not a different id).

``allowedResourceActions`` are abridged: the actions listed are real entries of each role's table
in the entra-docs include files (``includes/<role>.md``) or of the ``roleDefinitions_list`` doc
sample; roles whose table was not transcribed carry an empty list rather than invented actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
AUTHENTICATION_ADMINISTRATOR = "c4e39bd9-1100-46d3-8c65-fb160da0071f"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
CONDITIONAL_ACCESS_ADMINISTRATOR = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
INTUNE_ADMINISTRATOR = "3a2c62db-5318-420d-8d74-23affee5d9d5"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
SHAREPOINT_ADMINISTRATOR = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
MESSAGE_CENTER_READER = "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
USAGE_SUMMARY_REPORTS_READER = "75934031-6c7e-415a-99d7-48dbd49e875e"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"

# PIM refuses to remove the last active assignment of these (domain-facts.md,
# MicrosoftDocs/azure-docs PR #89489).
LAST_ACTIVE_PROTECTED = frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR})

_SAMPLE_COMMON = (
    "microsoft.azure.serviceHealth/allEntities/allTasks",
    "microsoft.azure.supportTickets/allEntities/allTasks",
)
_SAMPLE_PORTAL = (
    "microsoft.office365.webPortal/allEntities/standard/read",
    "microsoft.office365.serviceHealth/allEntities/allTasks",
    "microsoft.office365.supportTickets/allEntities/allTasks",
)


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    display_name: str
    description: str
    privileged: bool
    actions: tuple[str, ...] = ()
    inherits_from: tuple[str, ...] = field(default=())


def _role(
    role_id: str,
    name: str,
    description: str,
    privileged: bool,
    actions: tuple[str, ...] = (),
    inherits_from: tuple[str, ...] = (),
) -> RoleDefinition:
    return RoleDefinition(role_id, name, description, privileged, actions, inherits_from)


BUILT_IN_ROLES: tuple[RoleDefinition, ...] = (
    _role(
        GLOBAL_ADMINISTRATOR,
        "Global Administrator",
        "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft "
        "Entra identities.",
        True,
    ),
    _role(
        PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
        "Privileged Authentication Administrator",
        "Can access to view, set and reset authentication method information for any user "
        "(admin or non-admin).",
        True,
    ),
    _role(
        PRIVILEGED_ROLE_ADMINISTRATOR,
        "Privileged Role Administrator",
        "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged "
        "Identity Management.",
        True,
        (
            "microsoft.directory/directoryRoles/allProperties/allTasks",
            "microsoft.directory/privilegedIdentityManagement/allProperties/allTasks",
            "microsoft.directory/roleAssignments/allProperties/allTasks",
            "microsoft.directory/roleDefinitions/allProperties/allTasks",
            "microsoft.office365.webPortal/allEntities/standard/read",
        ),
    ),
    _role(
        APPLICATION_ADMINISTRATOR,
        "Application Administrator",
        "Can create and manage all aspects of app registrations and enterprise apps.",
        True,
    ),
    _role(
        CLOUD_APPLICATION_ADMINISTRATOR,
        "Cloud Application Administrator",
        "Can create and manage all aspects of app registrations and enterprise apps except App "
        "Proxy.",
        True,
    ),
    _role(
        USER_ADMINISTRATOR,
        "User Administrator",
        "Can manage all aspects of users and groups, including resetting passwords for limited "
        "admins.",
        True,
        (
            "microsoft.directory/groups/create",
            "microsoft.directory/users/assignLicense",
            "microsoft.directory/users/create",
            "microsoft.directory/users/delete",
            "microsoft.directory/users/password/update",
        ),
    ),
    _role(
        AUTHENTICATION_ADMINISTRATOR,
        "Authentication Administrator",
        "Can access to view, set and reset authentication method information for any non-admin "
        "user.",
        True,
    ),
    _role(
        SECURITY_ADMINISTRATOR,
        "Security Administrator",
        "Can read security information and reports, and manage configuration in Microsoft Entra "
        "ID and Office 365.",
        True,
    ),
    _role(
        CONDITIONAL_ACCESS_ADMINISTRATOR,
        "Conditional Access Administrator",
        "Can manage Conditional Access capabilities.",
        True,
    ),
    _role(
        HELPDESK_ADMINISTRATOR,
        "Helpdesk Administrator",
        "Can reset passwords for non-administrators and Helpdesk Administrators.",
        True,
        (
            "microsoft.directory/users/invalidateAllRefreshTokens",
            "microsoft.directory/users/bitLockerRecoveryKeys/read",
            "microsoft.directory/users/password/update",
            *_SAMPLE_COMMON,
            *_SAMPLE_PORTAL,
        ),
        (DIRECTORY_READERS,),
    ),
    _role(
        INTUNE_ADMINISTRATOR,
        "Intune Administrator",
        "Can manage all aspects of the Intune product.",
        True,
    ),
    _role(
        EXCHANGE_ADMINISTRATOR,
        "Exchange Administrator",
        "Can manage all aspects of the Exchange product.",
        False,
    ),
    _role(
        SHAREPOINT_ADMINISTRATOR,
        "SharePoint Administrator",
        "Can manage all aspects of the SharePoint service.",
        False,
    ),
    _role(
        "b0f54661-2d74-4c50-afa3-1ec803f12efe",
        "Billing Administrator",
        "Can perform common billing related tasks like updating payment information.",
        False,
        (
            "microsoft.directory/organization/basic/update",
            *_SAMPLE_COMMON,
            "microsoft.commerce.billing/allEntities/allTasks",
            *_SAMPLE_PORTAL,
        ),
        (DIRECTORY_READERS,),
    ),
    _role(
        REPORTS_READER,
        "Reports Reader",
        "Can read sign-in and audit reports.",
        False,
        (
            "microsoft.azure.serviceHealth/allEntities/allTasks",
            "microsoft.directory/auditLogs/allProperties/read",
            "microsoft.directory/provisioningLogs/allProperties/read",
            "microsoft.directory/signInReports/allProperties/read",
            "microsoft.office365.network/performance/allProperties/read",
            "microsoft.office365.usageReports/allEntities/allProperties/read",
            "microsoft.office365.webPortal/allEntities/standard/read",
        ),
    ),
    _role(
        GLOBAL_READER,
        "Global Reader",
        "Can read everything that a Global Administrator can, but not update anything.",
        True,
        (
            "microsoft.directory/auditLogs/allProperties/read",
            "microsoft.directory/privilegedIdentityManagement/allProperties/read",
            "microsoft.directory/roleAssignments/allProperties/read",
            "microsoft.directory/subscribedSkus/allProperties/read",
            "microsoft.directory/users/allProperties/read",
        ),
    ),
    _role(
        SECURITY_READER,
        "Security Reader",
        "Can read security information and reports in Microsoft Entra ID and Office 365.",
        True,
        (
            "microsoft.directory/auditLogs/allProperties/read",
            "microsoft.directory/identityProtection/allProperties/read",
            "microsoft.directory/privilegedIdentityManagement/allProperties/read",
            "microsoft.directory/signInReports/allProperties/read",
        ),
    ),
    _role(
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
        "Groups Administrator",
        "Members of this role can create/manage groups, create/manage groups settings like "
        "naming and expiration policies, and view groups activity and audit reports.",
        False,
    ),
    _role(
        "58a13ea3-c632-46ae-9ee0-9c0d43cd7f3d",
        "Attribute Assignment Administrator",
        "Assign custom security attribute keys and values to supported Microsoft Entra objects.",
        False,
    ),
    _role(
        "8424c6f0-a189-499e-bbd0-26c1753c96d4",
        "Attribute Definition Administrator",
        "Define and manage the definition of custom security attributes.",
        False,
    ),
    _role(
        DIRECTORY_READERS,
        "Directory Readers",
        "Can read basic directory information. Commonly used to grant directory read access to "
        "applications and guests.",
        False,
    ),
    _role(
        "95e79109-95c0-4d8e-aee3-d01accf2d47b",
        "Guest Inviter",
        "Can invite guest users independent of the 'members can invite guests' setting.",
        False,
    ),
    _role(
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
        "Can reset passwords for non-administrators and Password Administrators.",
        True,
    ),
    _role(
        "69091246-20e8-4a56-aa4d-066075b2a7a8",
        "Teams Administrator",
        "Can manage the Microsoft Teams service.",
        False,
    ),
    _role(
        "17315797-102d-40b4-93e0-432062caca18",
        "Compliance Administrator",
        "Can read and manage compliance configuration and reports in Microsoft Entra ID and "
        "Microsoft 365.",
        False,
    ),
    _role(
        "0526716b-113d-4c15-b2c8-68e3c22b9f80",
        "Authentication Policy Administrator",
        "Can create and manage the authentication methods policy, tenant-wide MFA settings, "
        "password protection policy, and verifiable credentials.",
        False,
    ),
    _role(
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
        "Manage Active Directory to Microsoft Entra cloud provisioning, Microsoft Entra Connect, "
        "pass-through authentication (PTA), password hash synchronization (PHS), seamless single "
        "sign-on (seamless SSO), and federation settings. Does not have access to manage "
        "Microsoft Entra Connect Health.",
        True,
    ),
    _role(
        "9360feb5-f418-4baa-8175-e2a00bac4301",
        "Directory Writers",
        "Can read and write basic directory information. For granting access to applications, "
        "not intended for users.",
        True,
    ),
    _role(
        "31392ffb-586c-42d1-9346-e59415a2cc4e",
        "Exchange Recipient Administrator",
        "Can create or update Exchange Online recipients within the Exchange Online organization.",
        False,
    ),
    _role(
        MESSAGE_CENTER_READER,
        "Message Center Reader",
        "Can read messages and updates for their organization in Office 365 Message Center only.",
        False,
    ),
    _role(
        USAGE_SUMMARY_REPORTS_READER,
        "Usage Summary Reports Reader",
        "Read Usage reports and Adoption Score, but can't access user details.",
        False,
    ),
    _role(
        "f023fd81-a637-4b56-95fd-791ac0226033",
        "Service Support Administrator",
        "Can read service health information and manage support tickets.",
        False,
        (*_SAMPLE_COMMON, *_SAMPLE_PORTAL),
        (DIRECTORY_READERS,),
    ),
    _role(
        "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f",
        "Security Operator",
        "Creates and manages security events.",
        True,
    ),
    _role(
        "4d6ac14f-3453-41d0-bef9-a3e0c569773a",
        "License Administrator",
        "Can manage product licenses on users and groups.",
        False,
    ),
)

ROLES_BY_ID: dict[str, RoleDefinition] = {role.id: role for role in BUILT_IN_ROLES}

# The rollout's target roles (DESIGN.md "Target roles") and the low-impact ones it leaves alone.
HIGH_IMPACT_ROLES: tuple[str, ...] = (
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    APPLICATION_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
    AUTHENTICATION_ADMINISTRATOR,
    SECURITY_ADMINISTRATOR,
    CONDITIONAL_ACCESS_ADMINISTRATOR,
    HELPDESK_ADMINISTRATOR,
    INTUNE_ADMINISTRATOR,
    EXCHANGE_ADMINISTRATOR,
    SHAREPOINT_ADMINISTRATOR,
)
LOW_IMPACT_ROLES: tuple[str, ...] = (
    REPORTS_READER,
    GLOBAL_READER,
    MESSAGE_CENTER_READER,
    USAGE_SUMMARY_REPORTS_READER,
)


# --- licences ------------------------------------------------------------------------------
# Service-plan and SKU ids from the Entra licensing service-plan reference (entra-docs
# licensing-service-plan-reference.md; reference §9 for AAD_PREMIUM_P2), cross-checked against
# public scripts that hard-code them.
AAD_PREMIUM_P2_PLAN_ID = "eec0eb4f-6444-4f95-aba0-50c24d67f998"
AAD_PREMIUM_PLAN_ID = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
MFA_PREMIUM_PLAN_ID = "8a256a2b-b617-496d-b51b-e76466e88db0"
EXCHANGE_S_ENTERPRISE_PLAN_ID = "efb87545-963c-4e0d-99df-69c6916d9eb0"


@dataclass(frozen=True)
class SkuTemplate:
    sku_id: str
    part_number: str
    plans: tuple[tuple[str, str, str], ...]  # (servicePlanId, servicePlanName, appliesTo)


SKU_ENTRA_P2 = SkuTemplate(
    "84a661c4-e949-4bd2-a560-ed7766fcaf2b",
    "AAD_PREMIUM_P2",
    (
        (AAD_PREMIUM_PLAN_ID, "AAD_PREMIUM", "User"),
        (MFA_PREMIUM_PLAN_ID, "MFA_PREMIUM", "User"),
        (AAD_PREMIUM_P2_PLAN_ID, "AAD_PREMIUM_P2", "User"),
    ),
)
SKU_ENTRA_P1 = SkuTemplate(
    "078d2b04-f1bd-4111-bbd4-b4b1b354cef4",
    "AAD_PREMIUM",
    (
        (AAD_PREMIUM_PLAN_ID, "AAD_PREMIUM", "User"),
        (MFA_PREMIUM_PLAN_ID, "MFA_PREMIUM", "User"),
    ),
)
SKU_OFFICE_E3 = SkuTemplate(
    "6fd2c87f-b296-42f0-b197-1e91e994b900",
    "ENTERPRISEPACK",
    ((EXCHANGE_S_ENTERPRISE_PLAN_ID, "EXCHANGE_S_ENTERPRISE", "User"),),
)
