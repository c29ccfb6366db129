"""``/identityGovernance/accessReviews/definitions`` (reference §8).

The created definition is echoed in the shape of the newest doc sample
(``accessReviewDefinitions_create_privilegedRole.response.json``, 2024): the recurrence pattern and
range come back fully populated, ``autoApplyDecisionsEnabled`` defaults to false, and
``status`` is ``NotStarted`` until the start date, ``InProgress`` after.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from typing import Any

from app.simulator import audit, errors, odata, permissions
from app.simulator.audit import Initiator
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.routes import common
from app.simulator.state import ReviewDefinition
from app.simulator.timefmt import format_datetime, parse_date_or_datetime

DEFINITIONS = "identityGovernance/accessReviews/definitions"
TYPE_NAME = "microsoft.graph.accessReviewScheduleDefinition"
DEFINITION_PROPERTIES = (
    "id",
    "displayName",
    "createdDateTime",
    "lastModifiedDateTime",
    "status",
    "descriptionForAdmins",
    "descriptionForReviewers",
    "createdBy",
    "scope",
    "instanceEnumerationScope",
    "reviewers",
    "fallbackReviewers",
    "backupReviewers",
    "settings",
    "stageSettings",
    "additionalNotificationRecipients",
)
DEFINITION_FILTER = odata.spec({"displayName": ("eq", "ne", "startswith", "contains")})
SCOPE_TYPES = (
    "#microsoft.graph.accessReviewQueryScope",
    "#microsoft.graph.principalResourceMembershipsScope",
    "#microsoft.graph.accessReviewInactiveUsersQueryScope",
    "#microsoft.graph.accessReviewReviewerScope",
)
ROLE_QUERY = re.compile(r"^/roleManagement/directory/roleDefinitions/([0-9a-fA-F-]{36})$")
USER_QUERY = re.compile(r"^/users/([0-9a-fA-F-]{36})$")
GROUP_QUERY = re.compile(r"^/groups/([0-9a-fA-F-]{36})(?:/transitiveMembers)?$")


def _invalid(message: str) -> errors.GraphError:
    return errors.bad_request(message)


def _required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"The property '{name}' is required and must be a non-empty string.")
    return value


def _query_scope(ctx: SimContext, scope: object, where: str) -> dict[str, Any]:
    if not isinstance(scope, dict):
        raise _invalid(f"{where} must be an object.")
    query = scope.get("query")
    if not isinstance(query, str) or not query:
        raise _invalid(f"{where}.query is required.")
    role = ROLE_QUERY.match(query)
    if role and role.group(1).lower() not in ctx.state.roles:
        raise _invalid(f"{where}: the role definition {role.group(1)} does not exist.")
    return {**scope, "queryRoot": scope.get("queryRoot")}


def _scope(ctx: SimContext, scope: object) -> dict[str, Any]:
    if not isinstance(scope, dict):
        raise _invalid("The property 'scope' is required and must be an object.")
    kind = scope.get("@odata.type") or (
        "#microsoft.graph.accessReviewQueryScope" if "query" in scope else None
    )
    if kind not in SCOPE_TYPES:
        raise _invalid(f"scope.@odata.type must be one of {', '.join(SCOPE_TYPES)}.")
    if kind == "#microsoft.graph.principalResourceMembershipsScope":
        result = copy.deepcopy(scope)
        for name in ("principalScopes", "resourceScopes"):
            items = scope.get(name)
            if not isinstance(items, list) or not items:
                raise _invalid(f"scope.{name} must be a non-empty list.")
            result[name] = [_query_scope(ctx, item, f"scope.{name}") for item in items]
        return result
    return _query_scope(ctx, scope, "scope")


def _reviewers(ctx: SimContext, value: object, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"'{name}' must be a list.")
    result = []
    for reviewer in value:
        if not isinstance(reviewer, dict) or not isinstance(reviewer.get("query"), str):
            raise _invalid(f"Each of '{name}' needs a 'query'.")
        query = reviewer["query"]
        user = USER_QUERY.match(query)
        group = GROUP_QUERY.match(query)
        if user and user.group(1).lower() not in ctx.state.users:
            raise _invalid(f"{name}: the user {user.group(1)} does not exist.")
        if group and group.group(1).lower() not in ctx.state.groups:
            raise _invalid(f"{name}: the group {group.group(1)} does not exist.")
        result.append({**reviewer, "queryRoot": reviewer.get("queryRoot")})
    return result


def _settings(value: object, now: datetime) -> tuple[dict[str, Any], datetime]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _invalid("'settings' must be an object.")
    recurrence = value.get("recurrence") or {}
    pattern = recurrence.get("pattern") or {}
    range_ = recurrence.get("range") or {}
    pattern_type = pattern.get("type", "absoluteMonthly")
    # Only weekly and absoluteMonthly are honoured for access reviews (reference §8.1).
    if pattern_type not in {"weekly", "absoluteMonthly"}:
        raise _invalid("settings.recurrence.pattern.type must be weekly or absoluteMonthly.")
    interval = pattern.get("interval", 1)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise _invalid("settings.recurrence.pattern.interval must be a positive integer.")
    range_type = range_.get("type", "noEnd")
    if range_type not in {"noEnd", "endDate", "numbered"}:
        raise _invalid("settings.recurrence.range.type must be noEnd, endDate or numbered.")
    raw_start = range_.get("startDate")
    start = now
    if raw_start is not None:
        try:
            start = parse_date_or_datetime(str(raw_start))
        except ValueError:
            raise _invalid("settings.recurrence.range.startDate must be a date.") from None
    duration = value.get("instanceDurationInDays", 1)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 1:
        raise _invalid("settings.instanceDurationInDays must be a positive integer.")
    decision = value.get("defaultDecision", "None")
    if decision not in {"None", "Approve", "Deny", "Recommendation"}:
        raise _invalid("settings.defaultDecision must be None, Approve, Deny or Recommendation.")
    auto_apply = bool(value.get("autoApplyDecisionsEnabled", False))
    apply_actions = value.get("applyActions")
    if apply_actions is None:
        apply_actions = (
            [{"@odata.type": "#microsoft.graph.removeAccessApplyAction"}] if auto_apply else []
        )
    settings = {
        "mailNotificationsEnabled": bool(value.get("mailNotificationsEnabled", True)),
        "reminderNotificationsEnabled": bool(value.get("reminderNotificationsEnabled", True)),
        "justificationRequiredOnApproval": bool(value.get("justificationRequiredOnApproval", True)),
        "defaultDecisionEnabled": bool(value.get("defaultDecisionEnabled", False)),
        "defaultDecision": decision,
        "instanceDurationInDays": duration,
        "autoApplyDecisionsEnabled": auto_apply,
        "recommendationsEnabled": bool(value.get("recommendationsEnabled", False)),
        "recommendationLookBackDuration": value.get("recommendationLookBackDuration"),
        "decisionHistoriesForReviewersEnabled": bool(
            value.get("decisionHistoriesForReviewersEnabled", False)
        ),
        "recurrence": {
            "pattern": {
                "type": pattern_type,
                "interval": interval,
                "month": 0,
                # Graph answered dayOfMonth 0 for a request that sent 5 (sample
                # accessReviewDefinitions_create_inactiveGuests…), so we do too.
                "dayOfMonth": 0,
                "daysOfWeek": [],
                "firstDayOfWeek": "sunday",
                "index": "first",
            },
            "range": {
                "type": range_type,
                "numberOfOccurrences": int(range_.get("numberOfOccurrences", 0) or 0),
                "recurrenceTimeZone": None,
                "startDate": start.date().isoformat(),
                "endDate": range_.get("endDate"),
            },
        },
        "applyActions": apply_actions,
        "recommendationInsightSettings": value.get("recommendationInsightSettings") or [],
    }
    return settings, start


def _definition(
    ctx: SimContext, body: object, *, existing: ReviewDefinition | None
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    now = ctx.clock.now()
    result: dict[str, Any] = {
        "id": existing.id if existing else ctx.state.ids.guid(),
        "displayName": _required_text(body, "displayName"),
        "createdDateTime": existing.body["createdDateTime"] if existing else format_datetime(now),
        "lastModifiedDateTime": format_datetime(now),
        "status": "NotStarted",
        "descriptionForAdmins": _required_text(body, "descriptionForAdmins"),
    }
    if body.get("descriptionForReviewers") is not None:
        reviewers_text = body["descriptionForReviewers"]
        if not isinstance(reviewers_text, str) or len(reviewers_text) > 256:
            raise _invalid("descriptionForReviewers must be a string of at most 256 characters.")
        result["descriptionForReviewers"] = reviewers_text
    result["createdBy"] = (
        existing.body["createdBy"]
        if existing
        else {
            "id": ctx.state.caller_service_principal_id,
            "displayName": ctx.state.caller_app_name,
            "userPrincipalName": None,
        }
    )
    result["scope"] = _scope(ctx, body.get("scope"))
    if body.get("instanceEnumerationScope") is not None:
        result["instanceEnumerationScope"] = _query_scope(
            ctx, body["instanceEnumerationScope"], "instanceEnumerationScope"
        )
    result["reviewers"] = _reviewers(ctx, body.get("reviewers"), "reviewers")
    fallback = _reviewers(ctx, body.get("fallbackReviewers"), "fallbackReviewers")
    if body.get("backupReviewers") is not None:
        result["backupReviewers"] = _reviewers(ctx, body.get("backupReviewers"), "backupReviewers")
    result["fallbackReviewers"] = fallback
    settings, start = _settings(body.get("settings"), now)
    result["settings"] = settings
    result["stageSettings"] = list(body.get("stageSettings") or [])
    result["additionalNotificationRecipients"] = list(
        body.get("additionalNotificationRecipients") or []
    )
    result["status"] = "InProgress" if start.date() <= now.date() else "NotStarted"
    return result


def _instance(ctx: SimContext, definition: dict[str, Any]) -> dict[str, Any]:
    start = parse_date_or_datetime(definition["settings"]["recurrence"]["range"]["startDate"])
    end = start + timedelta(days=definition["settings"]["instanceDurationInDays"])
    return {
        "id": ctx.state.ids.guid(),
        "startDateTime": format_datetime(start),
        "endDateTime": format_datetime(end),
        "status": definition["status"],
        "scope": definition["scope"],
        "reviewers": definition["reviewers"],
        "fallbackReviewers": definition["fallbackReviewers"],
    }


def _get(ctx: SimContext, definition_id: str) -> ReviewDefinition:
    review = ctx.state.reviews.get(definition_id.lower())
    if review is None:
        raise errors.not_found(f"The access review definition '{definition_id}' does not exist.")
    return review


def _review_audit(ctx: SimContext, activity: str, operation: str, review: ReviewDefinition) -> None:
    audit.record(
        ctx.state,
        at=ctx.clock.now(),
        activity=activity,
        operation_type=operation,
        initiator=Initiator("app"),
        targets=[
            {
                "id": review.id,
                "displayName": review.body["displayName"],
                "type": "AccessReview",
                "userPrincipalName": None,
                "groupType": None,
                "modifiedProperties": [],
            }
        ],
        category="Policy",
        service="Access Reviews",
    )


def list_definitions(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    query = common.list_query(
        request,
        filter_spec=DEFINITION_FILTER,
        selectable=DEFINITION_PROPERTIES,
        type_name=TYPE_NAME,
        top_max=100,
    )
    items = common.filtered([r.body for r in ctx.state.reviews.values()], query.node)
    order = {review.id: review.seq for review in ctx.state.reviews.values()}
    return common.collection(
        ctx,
        request,
        items,
        key=lambda body: order[body["id"]],
        render=lambda body: dict(body),
        query=query,
        fragment=DEFINITIONS,
        selectable=DEFINITION_PROPERTIES,
        type_name=TYPE_NAME,
    )


def create_definition(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    body = _definition(ctx, common.json_body(request), existing=None)
    review = ReviewDefinition(body["id"], body)
    review.instances.append(_instance(ctx, body))
    ctx.state.reviews[review.id] = review
    review.seq = ctx.state.next_seq()
    _review_audit(ctx, "Create access review", "Add", review)
    return common.entity(request, f"{DEFINITIONS}/$entity", dict(body), status=201)


def get_definition(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    review = _get(ctx, params["id"])
    item = odata.apply_select(
        dict(review.body),
        odata.parse_select(request.params.get("$select")),
        DEFINITION_PROPERTIES,
        TYPE_NAME,
    )
    return common.entity(request, f"{DEFINITIONS}/$entity", item)


def replace_definition(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    common.require_p2(ctx)
    review = _get(ctx, params["id"])
    review.body = _definition(ctx, common.json_body(request), existing=review)
    _review_audit(ctx, "Update access review", "Update", review)
    return GraphResponse(204)


def delete_definition(
    ctx: SimContext, request: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    common.require_p2(ctx)
    review = _get(ctx, params["id"])
    del ctx.state.reviews[review.id]
    _review_audit(ctx, "Delete access review", "Delete", review)
    return GraphResponse(204)


def list_instances(ctx: SimContext, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
    common.require_p2(ctx)
    review = _get(ctx, params["id"])
    query = common.list_query(
        request, filter_spec=None, type_name="microsoft.graph.accessReviewInstance"
    )
    return common.collection(
        ctx,
        request,
        review.instances,
        key=lambda item: item["startDateTime"],
        render=lambda item: dict(item),
        query=query,
        fragment=f"{DEFINITIONS}('{review.id}')/instances",
        selectable=(
            "id",
            "startDateTime",
            "endDateTime",
            "status",
            "scope",
            "reviewers",
            "fallbackReviewers",
        ),
        type_name="microsoft.graph.accessReviewInstance",
    )


def register(router: Router) -> None:
    read, write = permissions.ACCESS_REVIEWS_READ, permissions.ACCESS_REVIEWS_WRITE
    router.add("GET", DEFINITIONS, list_definitions, any_of=read)
    router.add("POST", DEFINITIONS, create_definition, any_of=write)
    router.add("GET", f"{DEFINITIONS}/{{id}}", get_definition, any_of=read)
    router.add("PUT", f"{DEFINITIONS}/{{id}}", replace_definition, any_of=write)
    router.add("DELETE", f"{DEFINITIONS}/{{id}}", delete_definition, any_of=write)
    router.add("GET", f"{DEFINITIONS}/{{id}}/instances", list_instances, any_of=read)
