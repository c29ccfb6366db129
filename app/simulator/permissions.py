"""Application permissions each route accepts (any one of them), from reference §1.

Where §1 marks a row unverified (eligibility reads, Mail.Send), the analogous documented row is
used. Listing schedule *requests* needs the ReadWrite schedule permission or
RoleManagement.ReadWrite.Directory: a real tenant answered a list call made with the Read
permission with "missing permission scope RoleEligibilitySchedule.ReadWrite.Directory,
RoleManagement.ReadWrite.Directory" (microsoftgraph/microsoft-graph-docs#22292).
"""

from __future__ import annotations

ROLE_DEFINITIONS_READ = frozenset(
    {
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "Directory.Read.All",
        "RoleManagement.ReadWrite.Directory",
        "Directory.ReadWrite.All",
    }
)
ROLE_ASSIGNMENTS_READ = ROLE_DEFINITIONS_READ
ASSIGNMENT_SCHEDULES_READ = frozenset(
    {
        "RoleAssignmentSchedule.Read.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
    }
)
ELIGIBILITY_SCHEDULES_READ = frozenset(
    {
        "RoleEligibilitySchedule.Read.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
    }
)
ASSIGNMENT_REQUESTS_READ = frozenset(
    {"RoleAssignmentSchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"}
)
ELIGIBILITY_REQUESTS_READ = frozenset(
    {"RoleEligibilitySchedule.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"}
)
ASSIGNMENT_REQUESTS_WRITE = frozenset(
    {
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
        "RoleAssignmentSchedule.Remove.Directory",
    }
)
ELIGIBILITY_REQUESTS_WRITE = frozenset(
    {
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
        "RoleEligibilitySchedule.Remove.Directory",
    }
)
# The *.Remove.Directory permissions only allow removals (reference §1, POST requests row).
REMOVE_ONLY = frozenset(
    {"RoleAssignmentSchedule.Remove.Directory", "RoleEligibilitySchedule.Remove.Directory"}
)
POLICIES_READ = frozenset(
    {
        "RoleManagementPolicy.Read.Directory",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleManagementPolicy.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
    }
)
POLICIES_WRITE = frozenset(
    {"RoleManagementPolicy.ReadWrite.Directory", "RoleManagement.ReadWrite.Directory"}
)
ACCESS_REVIEWS_READ = frozenset({"AccessReview.Read.All", "AccessReview.ReadWrite.All"})
ACCESS_REVIEWS_WRITE = frozenset({"AccessReview.ReadWrite.All"})
SUBSCRIBED_SKUS_READ = frozenset(
    {
        "Organization.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Organization.ReadWrite.All",
    }
)
ORGANIZATION_READ = SUBSCRIBED_SKUS_READ
USERS_READ = frozenset(
    {
        "User.Read.All",
        "User.ReadBasic.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
GROUPS_READ = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
SERVICE_PRINCIPALS_READ = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
DIRECTORY_OBJECTS_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
MAIL_SEND = frozenset({"Mail.Send"})
MAIL_READ = frozenset({"Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"})
# Directory audits need both (reference §1: "AuditLog.Read.All and Directory.Read.All").
DIRECTORY_AUDITS_ALL_OF = frozenset({"AuditLog.Read.All", "Directory.Read.All"})
