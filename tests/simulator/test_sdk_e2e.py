"""Conformance (3): Microsoft's Python SDK (msgraph-sdk) against the standalone simulator.

The simulator runs in a subprocess through ``run_standalone`` on a free loopback port. The SDK
gets a static bearer token and a Graph request adapter whose base URL is the simulator; an httpx
request hook fails the test if anything is sent anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    # kiota_abstractions.default_query_parameters warns while being imported (a class body
    # calls warn()), and pytest turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.api_error import APIError
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.models.access_review_query_scope import AccessReviewQueryScope
    from msgraph.generated.models.access_review_reviewer_scope import AccessReviewReviewerScope
    from msgraph.generated.models.access_review_schedule_definition import (
        AccessReviewScheduleDefinition,
    )
    from msgraph.generated.models.access_review_schedule_settings import (
        AccessReviewScheduleSettings,
    )
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.expiration_pattern import ExpirationPattern
    from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
    from msgraph.generated.models.principal_resource_memberships_scope import (
        PrincipalResourceMembershipsScope,
    )
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.models.recurrence_pattern import RecurrencePattern
    from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
    from msgraph.generated.models.recurrence_range import RecurrenceRange
    from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
    from msgraph.generated.models.request_schedule import RequestSchedule
    from msgraph.generated.models.unified_role_assignment_schedule_request import (
        UnifiedRoleAssignmentScheduleRequest,
    )
    from msgraph.generated.models.unified_role_eligibility_schedule_request import (
        UnifiedRoleEligibilityScheduleRequest,
    )
    from msgraph.generated.models.unified_role_management_policy_expiration_rule import (
        UnifiedRoleManagementPolicyExpirationRule,
    )
    from msgraph.generated.models.unified_role_schedule_request_actions import (
        UnifiedRoleScheduleRequestActions,
    )
    from msgraph.generated.role_management.directory.role_assignments import (
        role_assignments_request_builder as role_assignments,
    )
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
        SendMailPostRequestBody,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]

from tests.simulator.conftest import USER_ADMIN

pytestmark = [
    pytest.mark.slow,
    # msgraph-sdk's generated request builders call warn(DeprecationWarning) in class bodies, so
    # every lazily imported builder warns; that is the SDK's noise, not a simulator problem.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

SERVER = """
import sys
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.standalone import run_standalone
run_standalone(port=int(sys.argv[1]), state=generate_tenant(users=150, admins=30, seed=4),
               limits=SimLimits(min_change_interval_seconds=0))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/_sim/profile", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the standalone simulator did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class StaticToken(AccessTokenProvider):
    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return "simulated-token"

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator(["127.0.0.1"])


def _client(base: str) -> tuple[GraphServiceClient, httpx.AsyncBaseTransport]:
    async def loopback_only(request: httpx.Request) -> None:
        assert request.url.host == "127.0.0.1", f"the SDK tried to reach {request.url}"

    # The factory wraps the client's transport in kiota's middleware chain; keep the real one
    # to close its connection pool at the end.
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            transport=transport, trust_env=False, event_hooks={"request": [loopback_only]}
        )
    )
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()), client=http)
    adapter.base_url = f"{base}/v1.0"
    return GraphServiceClient(request_adapter=adapter), transport


async def test_sdk_round_trip(simulator_url: str) -> None:
    graph, transport = _client(simulator_url)
    control = httpx.AsyncClient(base_url=simulator_url, trust_env=False)
    state = (await control.get("/_sim/state")).json()
    profile = (await control.get("/_sim/profile")).json()
    try:
        definitions = await graph.role_management.directory.role_definitions.get()
        assert definitions
        assert definitions.value
        assert any(r.id == USER_ADMIN for r in definitions.value)

        # Paging: $top=7 and follow @odata.nextLink with with_url.
        builder = role_assignments.RoleAssignmentsRequestBuilder
        config = RequestConfiguration(
            query_parameters=builder.RoleAssignmentsRequestBuilderGetQueryParameters(top=7)
        )
        page = await graph.role_management.directory.role_assignments.get(
            request_configuration=config
        )
        seen: list[str] = []
        while page is not None:
            seen += [a.id for a in page.value or [] if a.id]
            if not page.odata_next_link:
                break
            page = await graph.role_management.directory.role_assignments.with_url(
                page.odata_next_link
            ).get()
        assert len(seen) == len(set(seen)) == len(state["active_assignments"])

        admin = next(
            a["principal_id"]
            for a in state["active_assignments"]
            if a["role_definition_id"] == USER_ADMIN and a["principal_type"] == "user"
        )
        eligible = await graph.role_management.directory.role_eligibility_schedule_requests.post(
            UnifiedRoleEligibilityScheduleRequest(
                action=UnifiedRoleScheduleRequestActions.AdminAssign,
                principal_id=admin,
                role_definition_id=USER_ADMIN,
                directory_scope_id="/",
                justification="SDK conversion",
                schedule_info=RequestSchedule(
                    expiration=ExpirationPattern(type=ExpirationPatternType.NoExpiration)
                ),
            )
        )
        assert eligible
        assert eligible.status == "Provisioned"
        assert eligible.target_schedule_id
        removed = await graph.role_management.directory.role_assignment_schedule_requests.post(
            UnifiedRoleAssignmentScheduleRequest(
                action=UnifiedRoleScheduleRequestActions.AdminRemove,
                principal_id=admin,
                role_definition_id=USER_ADMIN,
                directory_scope_id="/",
            )
        )
        assert removed
        assert removed.status == "Revoked"
        assert removed.schedule_info is None

        policy_id = state["policies"][USER_ADMIN]["policy_id"]
        rules = graph.policies.role_management_policies.by_unified_role_management_policy_id(
            policy_id
        ).rules
        rule = await rules.by_unified_role_management_policy_rule_id(
            "Expiration_EndUser_Assignment"
        ).get()
        assert isinstance(rule, UnifiedRoleManagementPolicyExpirationRule)
        assert rule.is_expiration_required
        assert rule.target
        assert rule.target.caller == "EndUser"
        # ISO 8601 as Graph wants it; kiota writes a timedelta as str(timedelta) ("4:00:00"),
        # which Graph's Edm.Duration parsing (and the simulator) refuse.
        rule.maximum_duration = "PT4H"  # type: ignore[assignment]
        updated = await rules.by_unified_role_management_policy_rule_id(rule.id or "").patch(rule)
        assert isinstance(updated, UnifiedRoleManagementPolicyExpirationRule)
        reread = await rules.by_unified_role_management_policy_rule_id(
            "Expiration_EndUser_Assignment"
        ).get()
        assert isinstance(reread, UnifiedRoleManagementPolicyExpirationRule)
        assert str(reread.maximum_duration) == "4:00:00"

        owner = profile["bindings"]["role_owners"]["owners"][USER_ADMIN]
        definition = await graph.identity_governance.access_reviews.definitions.post(
            AccessReviewScheduleDefinition(
                display_name="Quarterly review - User Administrator",
                description_for_admins="PIM rollout quarterly review",
                scope=PrincipalResourceMembershipsScope(
                    principal_scopes=[
                        AccessReviewQueryScope(query="/users", query_type="MicrosoftGraph"),
                        AccessReviewQueryScope(query="/groups", query_type="MicrosoftGraph"),
                    ],
                    resource_scopes=[
                        AccessReviewQueryScope(
                            query=f"/roleManagement/directory/roleDefinitions/{USER_ADMIN}",
                            query_type="MicrosoftGraph",
                        )
                    ],
                ),
                reviewers=[
                    AccessReviewReviewerScope(query=f"/users/{owner}", query_type="MicrosoftGraph")
                ],
                settings=AccessReviewScheduleSettings(
                    default_decision_enabled=True,
                    default_decision="Deny",
                    auto_apply_decisions_enabled=True,
                    instance_duration_in_days=14,
                    recurrence=PatternedRecurrence(
                        pattern=RecurrencePattern(
                            type=RecurrencePatternType.AbsoluteMonthly, interval=3
                        ),
                        range=RecurrenceRange(
                            type=RecurrenceRangeType.NoEnd, start_date=date(2030, 1, 1)
                        ),
                    ),
                ),
            )
        )
        assert definition
        assert definition.id
        assert definition.status == "NotStarted"
        reviews = graph.identity_governance.access_reviews.definitions
        fetched = await reviews.by_access_review_schedule_definition_id(definition.id).get()
        assert fetched
        assert fetched.display_name == "Quarterly review - User Administrator"
        await reviews.by_access_review_schedule_definition_id(definition.id).delete()
        with pytest.raises(APIError) as gone:
            await reviews.by_access_review_schedule_definition_id(definition.id).get()
        assert gone.value.response_status_code == 404

        skus = await graph.subscribed_skus.get()
        plans = {
            p.service_plan_name
            for s in (skus.value if skus else []) or []
            for p in s.service_plans or []
        }
        assert "AAD_PREMIUM_P2" in plans

        await graph.users.by_user_id(profile["comms"]["sender"]).send_mail.post(
            SendMailPostRequestBody(
                message=Message(
                    subject="PIM is coming to your admin roles",
                    body=ItemBody(
                        content_type=BodyType.Text, content="From next week, activate in PIM."
                    ),
                    to_recipients=[
                        Recipient(email_address=EmailAddress(address="admins@contoso.com"))
                    ],
                ),
                save_to_sent_items=False,
            )
        )
        outbox = (await control.get("/_sim/outbox")).json()
        assert outbox[-1]["subject"] == "PIM is coming to your admin roles"
        assert json.dumps(outbox[-1]["to"]) == '["admins@contoso.com"]'
    finally:
        await transport.aclose()
        await control.aclose()
