"""Graph's error shape and the error codes the simulator answers with.

Body: ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` (reference §2.1, samples ``error_example`` and ``throttling_429``).

Where Microsoft documents or third parties observed a code, we use it (source in the comment).
Where nothing is published, we chose a descriptive code; those are marked *chosen* and listed in
the simulator's report so nobody mistakes them for Graph's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.simulator.timefmt import http_date

# --- documented / observed codes ---------------------------------------------------------
# PIM request errors: Azure REST "privileged role common errors" include
# (learn.microsoft.com/en-us/rest/api/authorization/includes/privileged-role-common-errors)
# lists RoleAssignmentExists and RoleAssignmentRequestPolicyValidationFailed with the rule names
# ExpirationRule, JustificationRule, EligibilityRule, TicketingRule, MfaRule; reference §5.5.
ROLE_ASSIGNMENT_EXISTS = "RoleAssignmentExists"
ROLE_ASSIGNMENT_DOES_NOT_EXIST = "RoleAssignmentDoesNotExist"
POLICY_VALIDATION_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
# Observed on v1.0 (DanielChronlund/DCToolbox#50): "The Active duration is too short. Miniumum
# Required is 5 minutes."
ACTIVE_DURATION_TOO_SHORT = "ActiveDurationTooShort"
# Observed (msgraph-sdk-powershell#2800, azure-powershell#25421) when the authentication-context
# rule is on and the token lacks the acrs claim.
ACRS_VALIDATION_FAILED = "RoleAssignmentRequestAcrsValidationFailed"
# EasyPIM#239/#121 (domain-facts.md): MFA and authentication context on the same activation.
MFA_AND_ACRS_CONFLICT = "MfaAndAcrsConflict"
AUTHORIZATION_DENIED = "Authorization_RequestDenied"  # batch sample, reference §5.5
INVALID_AUTH_TOKEN = "InvalidAuthenticationToken"  # Graph's 401 code (concepts/errors.md)
TOO_MANY_REQUESTS = "TooManyRequests"  # throttling_429 sample
BAD_REQUEST = "BadRequest"  # Graph's generic 400 (concepts/errors.md)
REQUEST_BAD_REQUEST = "Request_BadRequest"  # directory-backed 400/405 (batch sample item 4)
UNSUPPORTED_QUERY = "Request_UnsupportedQuery"  # directory objects: unsupported $filter
RESOURCE_NOT_FOUND = "Request_ResourceNotFound"  # directory objects: unknown id
NOT_FOUND = "ResourceNotFound"
# Exchange: sender that does not exist / has no Exchange Online mailbox.
ERROR_INVALID_USER = "ErrorInvalidUser"
MAILBOX_NOT_ENABLED = "MailboxNotEnabledForRESTAPI"
SERVICE_UNAVAILABLE = "serviceNotAvailable"  # concepts/errors.md code list
GENERAL_EXCEPTION = "generalException"
GATEWAY_TIMEOUT = "gatewayTimeout"

# --- chosen codes (no published code found) -----------------------------------------------
# PIM refuses these (domain-facts.md) but no error code is published; searched the Graph docs,
# azure-docs/entra-docs issues and SDK issues without a hit.
LAST_ACTIVE_ASSIGNMENT = "LastActiveRoleAssignmentRemovalNotAllowed"
CHANGE_TOO_SOON = "RoleAssignmentRecentlyChanged"
SERVICE_PRINCIPAL_NOT_ELIGIBLE = "ServicePrincipalEligibilityNotSupported"
ELIGIBLE_DURATION_TOO_SHORT = "EligibleDurationTooShort"
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"
ROLE_NOT_FOUND = "RoleDefinitionNotFound"
GROUP_NOT_ROLE_ASSIGNABLE = "GroupNotRoleAssignable"
REQUEST_NOT_CANCELABLE = "RequestNotCancelable"
ACTION_NOT_SUPPORTED = "ActionNotSupported"
INVALID_POLICY_RULE = "InvalidPolicyRule"


class GraphError(Exception):
    """A Graph error answer: raised anywhere in a handler, rendered by the pipeline."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        inner: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.inner = dict(inner or {})


def bad_request(message: str, code: str = BAD_REQUEST) -> GraphError:
    return GraphError(400, code, message)


def not_found(message: str, code: str = NOT_FOUND) -> GraphError:
    return GraphError(404, code, message)


def policy_failed(rules: Sequence[str]) -> GraphError:
    quoted = ",".join(f'"{rule}"' for rule in rules)
    return GraphError(
        400, POLICY_VALIDATION_FAILED, f"The following policy rules failed: [{quoted}]"
    )


def error_body(
    error: GraphError, *, request_id: str, client_request_id: str | None, now: datetime
) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "date": http_date(now),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    inner.update(error.inner)
    return {"error": {"code": error.code, "message": error.message, "innerError": inner}}
