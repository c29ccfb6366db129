"""Conformance: every reference sample parses into our models; model behaviour."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app.graph.batching import parse_batch_answers
from app.graph.errors import (
    GraphError,
    GraphForbiddenError,
    GraphThrottledError,
)
from app.graph.models import (
    AccessReviewDefinition,
    AccessReviewDefinitionCreate,
    ApprovalRule,
    AuthenticationContextRule,
    BatchRequest,
    BatchRequestBody,
    CollectionPage,
    DirectoryAudit,
    DirectoryObject,
    EnablementRule,
    ExpirationRule,
    ExpirationType,
    GroupMembers,
    NotificationRule,
    OtherSubjectSet,
    PolicyAssignment,
    PolicyRuleTarget,
    RoleAssignment,
    RoleAssignmentSchedule,
    RoleAssignmentScheduleInstance,
    RoleDefinition,
    RoleEligibilitySchedule,
    RoleEligibilityScheduleInstance,
    RoleManagementPolicy,
    ScheduleRequest,
    ScheduleRequestAction,
    ScheduleRequestCreate,
    SendMailRequest,
    SingleUser,
    SubscribedSku,
    UnknownPolicyRule,
    entra_id_p2_capacity,
    format_iso_duration,
    has_entra_id_p2,
    parse_iso_duration,
    parse_policy_rule,
)
from tests.fixtures import GRAPH_SAMPLES

SAMPLES = GRAPH_SAMPLES
INDEX = json.loads((SAMPLES / "index.json").read_text())
INVALID_JSON_SAMPLE = "roleAssignments_list_filterRoleDefinition_expandPrincipal.response.json"


def collection(model: type[BaseModel]) -> Callable[[Any], object]:
    def parse(data: Any) -> object:
        page = CollectionPage.model_validate(data)
        assert page.value, "sample collection is empty"
        return [model.model_validate(item) for item in page.value]

    return parse


def single(model: type[BaseModel]) -> Callable[[Any], object]:
    return model.model_validate


def rules(data: Any) -> object:
    return [parse_policy_rule(item) for item in CollectionPage.model_validate(data).value]


def error(data: Any) -> object:
    parsed = GraphError.from_response(
        429 if "TooManyRequests" in json.dumps(data) else 400, {}, data
    )
    assert parsed.code
    return parsed


def batch_answer(data: Any) -> object:
    request = json.loads((SAMPLES / "batch.request.json").read_text())
    items = BatchRequestBody.model_validate(request).requests
    answers = parse_batch_answers(data, items)
    assert set(answers) == {item.id for item in items}
    return answers


RESPONSE_PARSERS: dict[str, Callable[[Any], object]] = {
    "roleAssignments_list_filterRoleDefinition_expandPrincipal": collection(RoleAssignment),
    "roleAssignments_list_filterPrincipalId": collection(RoleAssignment),
    "roleDefinitions_list": collection(RoleDefinition),
    "roleAssignmentScheduleInstances_list": collection(RoleAssignmentScheduleInstance),
    "roleAssignmentSchedules_list": collection(RoleAssignmentSchedule),
    "roleEligibilitySchedules_list": collection(RoleEligibilitySchedule),
    "roleEligibilityScheduleInstances_list": collection(RoleEligibilityScheduleInstance),
    "roleEligibilityScheduleRequests_adminAssign": single(ScheduleRequest),
    "roleEligibilityScheduleRequests_adminRemove": single(ScheduleRequest),
    "roleEligibilityScheduleRequests_list": collection(ScheduleRequest),
    "roleAssignmentScheduleRequests_adminAssign": single(ScheduleRequest),
    "roleAssignmentScheduleRequests_selfActivate": single(ScheduleRequest),
    "roleAssignmentScheduleRequests_list": collection(ScheduleRequest),
    "roleManagementPolicies_list": collection(RoleManagementPolicy),
    "roleManagementPolicyAssignments_list": collection(PolicyAssignment),
    "roleManagementPolicyAssignments_list_filterRole_expandPolicyRules": collection(
        PolicyAssignment
    ),
    "roleManagementPolicy_listRules": rules,
    "roleManagementPolicyRule_get": parse_policy_rule,
    "roleManagementPolicyRule_update_expirationEndUser": parse_policy_rule,
    "accessReviewDefinitions_create_inactiveGuests_quarterlyDenyAutoApply": single(
        AccessReviewDefinition
    ),
    "accessReviewDefinitions_create_privilegedRole": single(AccessReviewDefinition),
    "directoryAudits_list": collection(DirectoryAudit),
    "directoryAudits_list_filterInitiatedBy": collection(DirectoryAudit),
    "subscribedSkus_list": collection(SubscribedSku),
    "error_example": error,
    "throttling_429": error,
    "batch": batch_answer,
}


def request_rule(data: Any) -> object:
    rule = parse_policy_rule(data)
    assert rule.to_patch_body() == data, "a rule must PATCH back exactly as read"
    return rule


REQUEST_PARSERS: dict[str, Callable[[Any], object]] = {
    "roleEligibilityScheduleRequests_adminAssign": ScheduleRequestCreate.model_validate,
    "roleEligibilityScheduleRequests_adminRemove": ScheduleRequestCreate.model_validate,
    "roleAssignmentScheduleRequests_adminAssign": ScheduleRequestCreate.model_validate,
    "roleAssignmentScheduleRequests_selfActivate": ScheduleRequestCreate.model_validate,
    "accessReviewDefinitions_create_inactiveGuests_quarterlyDenyAutoApply": (
        AccessReviewDefinitionCreate.model_validate
    ),
    "accessReviewDefinitions_create_privilegedRole": AccessReviewDefinitionCreate.model_validate,
    "roleManagementPolicyRule_update_expirationEndUser": request_rule,
    "roleManagementPolicyRule_update_enablementEndUser": request_rule,
    "roleManagementPolicyRule_update_approvalEndUser": request_rule,
    "roleManagementPolicyRule_update_expirationAdminEligibility": request_rule,
    "roleManagementPolicyRule_update_expirationAdminAssignment": request_rule,
    "roleManagementPolicyRule_update_enablementAdminAssignment": request_rule,
    "users_sendMail": SendMailRequest.model_validate,
    "batch": BatchRequestBody.model_validate,
    "batch_dependsOn": BatchRequestBody.model_validate,
}


def sample_params(suffix: str) -> list[Any]:
    params = []
    for entry in INDEX["entries"]:
        for name in entry["files"]:
            if not name.endswith(suffix):
                continue
            marks = []
            if entry.get("file_info", {}).get(name, {}).get("valid_json") is False:
                marks.append(
                    pytest.mark.skip(
                        reason=f"{name} is invalid JSON (trailing commas) exactly as Microsoft "
                        "published it; covered by test_invalid_sample_parses_once_repaired"
                    )
                )
            params.append(pytest.param(entry["operation"], name, id=name, marks=marks))
    return params


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


class TestReferenceSamples:
    def test_the_invalid_sample_is_the_one_named(self) -> None:
        invalid = [
            name
            for entry in INDEX["entries"]
            for name, info in entry.get("file_info", {}).items()
            if info.get("valid_json") is False
        ]
        assert invalid == [INVALID_JSON_SAMPLE]

    @pytest.mark.parametrize(("operation", "name"), sample_params(".response.json"))
    def test_response_parses(self, operation: str, name: str) -> None:
        assert operation in RESPONSE_PARSERS, f"no client model declared for {name}"
        assert RESPONSE_PARSERS[operation](load(name)) is not None

    @pytest.mark.parametrize(("operation", "name"), sample_params(".request.json"))
    def test_request_validates_through_create_models(self, operation: str, name: str) -> None:
        assert operation in REQUEST_PARSERS, f"no create model declared for {name}"
        assert REQUEST_PARSERS[operation](load(name)) is not None

    def test_invalid_sample_parses_once_repaired(self) -> None:
        text = (SAMPLES / INVALID_JSON_SAMPLE).read_text()
        repaired = re.sub(r",(\s*[}\]])", r"\1", text)
        assignments = collection(RoleAssignment)(json.loads(repaired))
        assert isinstance(assignments, list)
        assert all(
            a.principal is not None and a.principal.principal_type == "user" for a in assignments
        )


class TestPolicyRules:
    def test_every_listed_rule_round_trips_exactly(self) -> None:
        for raw in load("roleManagementPolicy_listRules.response.json")["value"]:
            assert parse_policy_rule(raw).to_patch_body() == raw

    def test_rule_types_are_discriminated(self) -> None:
        kinds = {
            type(parse_policy_rule(raw))
            for raw in load("roleManagementPolicy_listRules.response.json")["value"]
        }
        assert kinds == {
            ExpirationRule,
            EnablementRule,
            ApprovalRule,
            AuthenticationContextRule,
            NotificationRule,
        }

    def test_get_response_drops_odata_context_for_patch(self) -> None:
        raw = load("roleManagementPolicyRule_get.response.json")
        body = parse_policy_rule(raw).to_patch_body()
        assert "@odata.context" not in body
        assert {k: v for k, v in raw.items() if k != "@odata.context"} == body
        assert next(iter(body)) == "@odata.type"

    def test_unknown_rule_type_and_unknown_properties_survive(self) -> None:
        raw = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyFutureRule",
            "id": "Future_Rule",
            "futureSetting": {"nested": [1, 2]},
            "target": {
                "caller": "Admin",
                "operations": ["all"],
                "level": "Assignment",
                "futureTargetProperty": True,
            },
        }
        rule = parse_policy_rule(raw)
        assert isinstance(rule, UnknownPolicyRule)
        assert rule.to_patch_body() == raw

    def test_odata_type_matching_ignores_case(self) -> None:
        rule = parse_policy_rule(
            {
                "@odata.type": "#Microsoft.Graph.UnifiedRoleManagementPolicyExpirationRule",
                "id": "Expiration_Admin_Assignment",
            }
        )
        assert isinstance(rule, ExpirationRule)

    def test_changed_rule_keeps_what_was_read(self) -> None:
        raw = load("roleManagementPolicy_listRules.response.json")["value"][10]
        rule = parse_policy_rule(raw)
        assert isinstance(rule, ExpirationRule)
        assert rule.maximum_timedelta == timedelta(hours=8)
        changed = rule.with_maximum(timedelta(hours=4))
        body = changed.to_patch_body()
        assert body["maximumDuration"] == "PT4H"
        assert body["target"] == raw["target"]
        assert rule.to_patch_body() == raw  # the snapshot is untouched

    def test_rule_built_in_code_sends_its_type(self) -> None:
        rule = EnablementRule(
            id="Enablement_EndUser_Assignment",
            enabled_rules=["MultiFactorAuthentication", "Justification"],
            target=PolicyRuleTarget(caller="EndUser", operations=["all"], level="Assignment"),
        )
        body = rule.to_patch_body()
        assert body["@odata.type"] == "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
        assert body["enabledRules"] == ["MultiFactorAuthentication", "Justification"]

    def test_approvers_are_typed_subject_sets(self) -> None:
        rule = parse_policy_rule(
            load("roleManagementPolicyRule_update_approvalEndUser.request.json")
        )
        assert isinstance(rule, ApprovalRule)
        assert rule.setting is not None
        approvers = rule.setting.approval_stages[0].primary_approvers
        assert isinstance(approvers[0], SingleUser)
        assert approvers[0].user_id == "10a08e2e-3ea2-4ce0-80cb-d5fdd4b05ea6"
        assert isinstance(approvers[1], GroupMembers)
        assert SingleUser(user_id="u").to_graph() == {
            "@odata.type": "#microsoft.graph.singleUser",
            "userId": "u",
        }

    def test_unknown_approver_kind_is_kept(self) -> None:
        raw = {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1}
        rule = parse_policy_rule(
            {
                "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
                "id": "Approval_EndUser_Assignment",
                "setting": {"approvalStages": [{"primaryApprovers": [raw]}]},
            }
        )
        assert isinstance(rule, ApprovalRule)
        assert rule.setting is not None
        approver = rule.setting.approval_stages[0].primary_approvers[0]
        assert isinstance(approver, OtherSubjectSet)
        assert approver.to_graph() == raw


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("P365D", timedelta(days=365)),
            ("PT1H45M", timedelta(hours=1, minutes=45)),
            ("PT8H", timedelta(hours=8)),
            ("P1DT2H", timedelta(days=1, hours=2)),
            ("PT30S", timedelta(seconds=30)),
            ("P2W", timedelta(days=14)),
        ],
    )
    def test_parse(self, text: str, value: timedelta) -> None:
        assert parse_iso_duration(text) == value

    @pytest.mark.parametrize("text", ["P1Y", "P1M", "PT", "P", "8 hours", ""])
    def test_parse_refuses_calendar_and_garbage(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_iso_duration(text)

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (timedelta(days=365), "P365D"),
            (timedelta(hours=1, minutes=45), "PT1H45M"),
            (timedelta(days=90), "P90D"),
            (timedelta(0), "PT0S"),
            (timedelta(seconds=1.5), "PT1.5S"),
            (timedelta(days=1, seconds=5), "P1DT5S"),
        ],
    )
    def test_format(self, value: timedelta, text: str) -> None:
        assert format_iso_duration(value) == text

    def test_format_refuses_negative(self) -> None:
        with pytest.raises(ValueError):
            format_iso_duration(timedelta(seconds=-1))


class TestScheduleRequestCreate:
    def test_sends_camel_case_whatever_the_input_case(self) -> None:
        body = ScheduleRequestCreate.model_validate(
            load("roleAssignmentScheduleRequests_adminAssign.request.json")
        ).to_graph()
        assert body["scheduleInfo"] == {
            "startDateTime": "2022-04-10T00:00:00Z",
            "expiration": {"type": "noExpiration"},
        }

    def test_defaults_and_omissions(self) -> None:
        req = ScheduleRequestCreate(
            action=ScheduleRequestAction.admin_remove, principal_id="p", role_definition_id="r"
        )
        assert req.to_graph() == {
            "action": "adminRemove",
            "principalId": "p",
            "roleDefinitionId": "r",
            "directoryScopeId": "/",
        }

    def test_duration_in_days(self) -> None:
        req = ScheduleRequestCreate.model_validate(
            {
                "action": "AdminAssign",
                "principalId": "p",
                "roleDefinitionId": "r",
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "P365D"}},
            }
        )
        assert req.action is ScheduleRequestAction.admin_assign
        assert req.to_graph()["scheduleInfo"] == {
            "expiration": {"type": "afterDuration", "duration": "P365D"}
        }

    def test_refuses_naive_datetimes_and_unknown_fields(self) -> None:
        with pytest.raises(ValidationError):
            ScheduleRequestCreate.model_validate(
                {
                    "action": "adminAssign",
                    "principalId": "p",
                    "roleDefinitionId": "r",
                    "scheduleInfo": {
                        "startDateTime": "2025-01-01T00:00:00",
                        "expiration": {"type": "noExpiration"},
                    },
                }
            )
        with pytest.raises(ValidationError):
            ScheduleRequestCreate.model_validate(
                {
                    "action": "adminAssign",
                    "principalId": "p",
                    "roleDefinitionId": "r",
                    "principalType": "User",
                }
            )

    @pytest.mark.parametrize(
        "expiration",
        [
            {"type": "afterDateTime"},
            {"type": "afterDuration"},
            {"type": "noExpiration", "duration": "P1D"},
        ],
    )
    def test_refuses_inconsistent_expiration(self, expiration: dict[str, str]) -> None:
        with pytest.raises(ValidationError):
            ScheduleRequestCreate.model_validate(
                {
                    "action": "adminAssign",
                    "principalId": "p",
                    "roleDefinitionId": "r",
                    "scheduleInfo": {"expiration": expiration},
                }
            )

    def test_refuses_unspecified_expiration(self) -> None:
        with pytest.raises(ValidationError):
            ScheduleRequestCreate.model_validate(
                {
                    "action": "adminAssign",
                    "principalId": "p",
                    "roleDefinitionId": "r",
                    "scheduleInfo": {"expiration": {"type": "notSpecified"}},
                }
            )


class TestCreateBodiesRoundTrip:
    @pytest.mark.parametrize(
        "name",
        [
            "accessReviewDefinitions_create_privilegedRole.request.json",
            "accessReviewDefinitions_create_inactiveGuests_quarterlyDenyAutoApply.request.json",
        ],
    )
    def test_access_review_bodies_are_sent_as_given(self, name: str) -> None:
        raw = load(name)
        assert AccessReviewDefinitionCreate.model_validate(raw).to_graph() == raw

    def test_batch_body_is_sent_as_given(self) -> None:
        raw = load("batch.request.json")
        body = BatchRequestBody.model_validate(raw)
        assert [item.to_graph() for item in body.requests] == raw["requests"]

    def test_send_mail_sample(self) -> None:
        request = SendMailRequest.model_validate(load("users_sendMail.request.json"))
        assert request.save_to_sent_items is False  # the doc sends the string "false"
        assert request.to_graph()["saveToSentItems"] is False
        assert [r.email_address.address for r in request.message.to_recipients] == [
            "frannis@contoso.com"
        ]


class TestScheduleRequestStatus:
    @pytest.mark.parametrize(
        ("status", "action", "flags"),
        [
            ("Provisioned", "adminAssign", "success"),
            ("Granted", "selfActivate", "success"),
            ("ScheduleCreated", "adminAssign", "success"),
            ("provisioned", "adminAssign", "success"),
            ("Revoked", "adminRemove", "success"),
            ("Revoked", "adminAssign", ""),
            ("PendingProvisioning", "adminAssign", "pending"),
            ("PendingScheduleCreation", "adminAssign", "pending"),
            ("PendingApproval", "selfActivate", "human"),
            ("PendingAdminDecision", "selfActivate", "human"),
            ("Denied", "selfActivate", "failure"),
            ("Failed", "adminAssign", "failure"),
            ("Canceled", "selfActivate", "failure"),
        ],
    )
    def test_helpers(self, status: str, action: str, flags: str) -> None:
        req = ScheduleRequest(id="x", status=status, action=action)
        assert (req.is_success, req.is_pending, req.is_waiting_on_human, req.is_failure) == (
            flags == "success",
            flags == "pending",
            flags == "human",
            flags == "failure",
        )

    def test_samples(self) -> None:
        removed = ScheduleRequest.model_validate(
            load("roleEligibilityScheduleRequests_adminRemove.response.json")
        )
        assert removed.is_success
        assert removed.action_kind is ScheduleRequestAction.admin_remove
        assert removed.schedule_info is None
        assigned = ScheduleRequest.model_validate(
            load("roleEligibilityScheduleRequests_adminAssign.response.json")
        )
        assert assigned.is_success
        assert assigned.target_schedule_id == "50877283-9d40-433c-bab8-7986dc10458a"
        assert assigned.schedule_info is not None
        assert assigned.schedule_info.expiration is not None
        assert assigned.schedule_info.expiration.type is ExpirationType.after_date_time

    def test_unknown_action_is_tolerated(self) -> None:
        req = ScheduleRequest(id="x", status="Provisioned", action="adminTeleport")
        assert req.action_kind is None


class TestInventoryModels:
    def test_outside_pim_schedule(self) -> None:
        schedules = [
            RoleAssignmentSchedule.model_validate(raw)
            for raw in load("roleAssignmentSchedules_list.response.json")["value"]
        ]
        assert [s.created_outside_pim for s in schedules] == [False, True]

    def test_instances(self) -> None:
        instance = RoleAssignmentScheduleInstance.model_validate(
            load("roleAssignmentScheduleInstances_list.response.json")["value"][0]
        )
        assert instance.is_direct
        assert instance.is_permanent
        assert not instance.is_activated
        assert instance.role_assignment_origin_id == instance.id
        assert instance.start_date_time is None

    @pytest.mark.parametrize(
        ("odata_type", "expected"),
        [
            ("#microsoft.graph.user", "user"),
            ("#microsoft.graph.group", "group"),
            ("#microsoft.graph.servicePrincipal", "servicePrincipal"),
            ("microsoft.graph.user", "user"),
            ("#microsoft.graph.device", "unknown"),
            (None, "unknown"),
        ],
    )
    def test_principal_type(self, odata_type: str | None, expected: str) -> None:
        data = {"id": "x"} if odata_type is None else {"@odata.type": odata_type, "id": "x"}
        assert DirectoryObject.model_validate(data).principal_type == expected

    def test_audit_reads_old_capitalised_type(self) -> None:
        audit = DirectoryAudit.model_validate(
            load("directoryAudits_list.response.json")["value"][0]
        )
        assert [t.type for t in audit.target_resources] == ["Group", "User"]

    def test_unknown_properties_do_not_break_parsing(self) -> None:
        assignment = RoleAssignment.model_validate(
            {"id": "a", "principalId": "p", "roleDefinitionId": "r", "brandNewProperty": 1}
        )
        assert assignment.model_extra == {"brandNewProperty": 1}


class TestLicensing:
    def test_sample_has_no_p2(self) -> None:
        skus = [
            SubscribedSku.model_validate(raw)
            for raw in load("subscribedSkus_list.response.json")["value"]
        ]
        assert not has_entra_id_p2(skus)
        assert entra_id_p2_capacity(skus) == 0

    def _sku(
        self, *, capability: str = "Enabled", plan_status: str = "Success", by: str = "name"
    ) -> SubscribedSku:
        plan = (
            {"servicePlanName": "AAD_PREMIUM_P2"}
            if by == "name"
            else {"servicePlanId": "eec0eb4f-6444-4f95-aba0-50c24d67f998"}
        )
        return SubscribedSku.model_validate(
            {
                "id": "s",
                "capabilityStatus": capability,
                "prepaidUnits": {"enabled": 25},
                "servicePlans": [{**plan, "provisioningStatus": plan_status}],
            }
        )

    @pytest.mark.parametrize("by", ["name", "id"])
    def test_p2_detected_by_service_plan(self, by: str) -> None:
        assert has_entra_id_p2([self._sku(by=by)])
        assert entra_id_p2_capacity([self._sku(by=by), self._sku(by=by)]) == 50

    def test_p2_needs_enabled_sku_and_provisioned_plan(self) -> None:
        assert not has_entra_id_p2([self._sku(capability="Suspended")])
        assert not has_entra_id_p2([self._sku(plan_status="Disabled")])


class TestBatchModels:
    def test_body_gets_a_content_type(self) -> None:
        item = BatchRequest(id="1", method="post", url="/x", body={"a": 1})
        assert item.to_graph() == {
            "id": "1",
            "method": "POST",
            "url": "/x",
            "body": {"a": 1},
            "headers": {"Content-Type": "application/json"},
        }

    def test_existing_content_type_is_kept(self) -> None:
        item = BatchRequest(
            id="1",
            method="POST",
            url="/x",
            body={},
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert item.to_graph()["headers"] == {"content-type": "application/json; charset=utf-8"}

    def test_limits(self) -> None:
        items = [BatchRequest(id=str(i), method="GET", url="/x") for i in range(21)]
        with pytest.raises(ValidationError):
            BatchRequestBody(requests=items)
        with pytest.raises(ValidationError):
            BatchRequestBody(requests=[items[0], items[0]])

    def test_sample_answer_items_are_typed(self) -> None:
        answers = batch_answer(load("batch.response.json"))
        assert isinstance(answers, dict)
        assert answers["1"].ok
        assert isinstance(answers["3"].error, GraphForbiddenError)
        assert answers["3"].error.code == "Authorization_RequestDenied"
        assert answers["3"].error.request_id == "93b6f17e-c05d-4f45-ad2a-6665c708d8a0"
        assert answers["4"].status == 405

    def test_throttled_item_has_its_retry_after(self) -> None:
        items = [BatchRequest(id="1", method="GET", url="/x")]
        answers = parse_batch_answers(
            {
                "responses": [
                    {
                        "id": "1",
                        "status": 429,
                        "headers": {"Retry-After": "3.5"},
                        "body": load("throttling_429.response.json"),
                    }
                ]
            },
            items,
        )
        error = answers["1"].error
        assert isinstance(error, GraphThrottledError)
        assert error.retry_after == 3.5
