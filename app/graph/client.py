"""``GraphClient``: the typed Microsoft Graph operations the product performs on a tenant.

One client per tenant (see :mod:`app.graph.factory`), long-lived, safe to share between tasks.
Everything goes through :class:`~app.graph.requester.GraphRequester` (retries, pacing, the
concurrency bound, typed errors); this module only knows Graph's paths, query options and models.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from datetime import datetime
from types import TracebackType
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.domain.tenant import GraphLimits
from app.graph.auth import GraphTokenAuth
from app.graph.batching import send_batch
from app.graph.errors import GraphError, GraphNotFoundError, GraphUnexpectedResponseError
from app.graph.models import (
    AccessReviewDefinition,
    AccessReviewDefinitionCreate,
    BatchRequest,
    BatchResponse,
    DirectoryAudit,
    DirectoryObject,
    Group,
    JsonObject,
    MailMessage,
    Organization,
    PolicyAssignment,
    PolicyRule,
    RoleAssignment,
    RoleAssignmentSchedule,
    RoleAssignmentScheduleInstance,
    RoleDefinition,
    RoleEligibilitySchedule,
    RoleEligibilityScheduleInstance,
    ScheduleRequest,
    ScheduleRequestAction,
    ScheduleRequestCreate,
    SendMailRequest,
    SubscribedSku,
    User,
    parse_policy_rule,
)
from app.graph.requester import (
    Bucket,
    GraphRequester,
    encode_query,
    json_object,
    odata_datetime,
    odata_filter,
    odata_quote,
    path_segment,
    query_params,
)
from app.settings import GraphSettings

ModelT = TypeVar("ModelT", bound=BaseModel)
ScheduleKind = Literal["eligibility", "assignment"]

DIRECTORY = "/roleManagement/directory"
POLICY_ASSIGNMENTS = "/policies/roleManagementPolicyAssignments"
POLICIES = "/policies/roleManagementPolicies"
REVIEW_DEFINITIONS = "/identityGovernance/accessReviews/definitions"
GET_BY_IDS_CHUNK = 1000
"""``directoryObjects/getByIds`` accepts up to 1,000 ids per call."""
LARGE_PAGE = 999
"""``$top`` for long reads: Graph's largest page for directory collections. The PIM lists don't
document ``$top`` (reference §2.2), so it is a request: whatever page size comes back is read,
by following ``@odata.nextLink`` as always."""

_REQUESTS_PATH: dict[ScheduleKind, str] = {
    "eligibility": f"{DIRECTORY}/roleEligibilityScheduleRequests",
    "assignment": f"{DIRECTORY}/roleAssignmentScheduleRequests",
}


def _parse(model: type[ModelT], data: JsonObject) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise GraphUnexpectedResponseError(
            f"Graph returned a {model.__name__} this client can't read "
            f"({exc.error_count()} problem(s), first at {_first_location(exc)})"
        ) from None


def _parse_rule(data: JsonObject) -> PolicyRule:
    try:
        return parse_policy_rule(data)
    except ValidationError as exc:
        raise GraphUnexpectedResponseError(
            f"Graph returned a policy rule this client can't read ({_first_location(exc)})"
        ) from None


def _first_location(exc: ValidationError) -> str:
    errors = exc.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else "?"


class GraphClient:
    """Typed Graph operations for one tenant over one long-lived async httpx client.

    ``transport`` is the seam: in-process tests and the demo plug in
    ``httpx.ASGITransport(app=simulator)``. ``sleeper``/``clock``/``rng`` make retries and pacing
    deterministic in tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        transport: httpx.AsyncBaseTransport | None = None,
        settings: GraphSettings,
        limits: GraphLimits,
        sleeper: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._auth = auth
        self._requester = GraphRequester(
            base_url,
            auth=auth,
            transport=transport,
            settings=settings,
            limits=limits,
            sleeper=sleeper,
            clock=clock,
            rng=rng,
        )

    @property
    def base_url(self) -> str:
        return self._requester.base_url

    async def ensure_token(self) -> None:
        """Have a Graph token in hand before any work starts (a no-op without token auth).

        Raises :class:`~app.graph.errors.GraphCredentialError` when the tenant's credential
        cannot get one.
        """
        if isinstance(self._auth, GraphTokenAuth):
            await self._auth.ensure_token()

    async def aclose(self) -> None:
        """Finish in-flight requests (bounded by the request timeout) and close connections."""
        await self._requester.aclose()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _get(self, path: str, params: dict[str, str] | None = None) -> JsonObject:
        return json_object(await self._requester.request("GET", path, params=params))

    async def _iter(
        self,
        model: type[ModelT],
        path: str,
        params: dict[str, str] | None = None,
        *,
        bucket: Bucket = Bucket.identity,
    ) -> AsyncGenerator[ModelT]:
        async for raw in self._requester.iter_values(path, params, bucket=bucket):
            yield _parse(model, raw)

    async def probe_write(self, method: str, path: str) -> None:
        """Send ``method path`` with an empty JSON body to learn whether the app may write there.

        Graph authorizes before it validates the body, so the answer is 403
        (``GraphForbiddenError``: permission missing) or a 400/404 (permission present); an
        empty body can't change anything, which is why this one write is retry-safe and unpaced.
        Raises the typed error Graph answers; returns only if Graph accepted the empty body.
        """
        await self._requester.request(method, path, json_body={}, idempotent=True, write_cost=0)

    # -- $batch ---------------------------------------------------------------------------------

    async def batch(self, requests: Sequence[BatchRequest]) -> dict[str, BatchResponse]:
        """Send ``requests`` through ``$batch`` (≤20 per POST, chunks concurrently).

        Result by request id. Per-item failures are typed errors in ``BatchResponse.error``,
        never raised; throttled items are re-sent after the largest ``Retry-After``.
        Raises ``ValueError`` for duplicate ids or a ``dependsOn`` across chunks of 20.
        """
        return await send_batch(self._requester, requests)

    async def create_schedule_requests(
        self, kind: ScheduleKind, requests: Sequence[ScheduleRequestCreate]
    ) -> list[ScheduleRequest | GraphError]:
        """Create many eligibility/assignment schedule requests via ``$batch`` (the conversion
        hot path). One result per input, in input order: the created request or its error."""
        items = [
            BatchRequest(
                id=str(index), method="POST", url=_REQUESTS_PATH[kind], body=req.to_graph()
            )
            for index, req in enumerate(requests, start=1)
        ]
        answers = await self.batch(items)
        results: list[ScheduleRequest | GraphError] = []
        for item in items:
            answer = answers[item.id]
            if answer.error is not None:
                results.append(answer.error)
                continue
            try:
                results.append(_parse(ScheduleRequest, answer.json_object()))
            except GraphUnexpectedResponseError as exc:
                results.append(exc)
        return results

    # -- role definitions and inventory --------------------------------------------------------

    async def list_role_definitions(
        self, *, ids: Sequence[str] | None = None
    ) -> list[RoleDefinition]:
        """All role definitions, or those whose id (= template id for built-ins) is in ``ids``.

        The id filter is applied client-side: the catalogue is small (one or two pages) and this
        avoids building ``id in (…)`` URLs of unbounded length.
        """
        wanted = None if ids is None else {value.casefold() for value in ids}
        if wanted is not None and not wanted:
            return []
        return [
            definition
            async for definition in self._iter(RoleDefinition, f"{DIRECTORY}/roleDefinitions")
            if wanted is None or definition.id.casefold() in wanted
        ]

    async def get_role_definition(self, id: str) -> RoleDefinition:
        """One role definition by id (a built-in role's template id); 404 if unknown."""
        return _parse(
            RoleDefinition, await self._get(f"{DIRECTORY}/roleDefinitions/{path_segment(id)}")
        )

    def _inventory(
        self,
        model: type[ModelT],
        resource: str,
        *,
        expand_principal: bool,
        top: int | None = None,
        **conditions: str | None,
    ) -> AsyncIterator[ModelT]:
        params = query_params(
            odata_filter(**conditions), expand="principal" if expand_principal else None, top=top
        )
        return self._iter(model, f"{DIRECTORY}/{resource}", params)

    def iter_role_assignments(
        self,
        *,
        role_definition_id: str | None = None,
        principal_id: str | None = None,
        expand_principal: bool = False,
        top: int | None = None,
    ) -> AsyncIterator[RoleAssignment]:
        """Active role assignments (``/roleAssignments``), optionally with ``principal``."""
        return self._inventory(
            RoleAssignment,
            "roleAssignments",
            expand_principal=expand_principal,
            top=top,
            roleDefinitionId=role_definition_id,
            principalId=principal_id,
        )

    def iter_assignment_schedules(
        self,
        *,
        role_definition_id: str | None = None,
        principal_id: str | None = None,
        expand_principal: bool = False,
        top: int | None = None,
    ) -> AsyncIterator[RoleAssignmentSchedule]:
        """Active assignment schedules; ``created_outside_pim`` marks non-PIM assignments."""
        return self._inventory(
            RoleAssignmentSchedule,
            "roleAssignmentSchedules",
            expand_principal=expand_principal,
            top=top,
            roleDefinitionId=role_definition_id,
            principalId=principal_id,
        )

    def iter_assignment_schedule_instances(
        self,
        *,
        role_definition_id: str | None = None,
        principal_id: str | None = None,
        assignment_type: str | None = None,
        member_type: str | None = None,
        expand_principal: bool = False,
        top: int | None = None,
    ) -> AsyncIterator[RoleAssignmentScheduleInstance]:
        """Active assignments as PIM sees them now. Conversion candidates are
        ``assignment_type="Assigned", member_type="Direct"`` with no ``end_date_time``."""
        return self._inventory(
            RoleAssignmentScheduleInstance,
            "roleAssignmentScheduleInstances",
            expand_principal=expand_principal,
            top=top,
            roleDefinitionId=role_definition_id,
            principalId=principal_id,
            assignmentType=assignment_type,
            memberType=member_type,
        )

    def iter_eligibility_schedules(
        self,
        *,
        role_definition_id: str | None = None,
        principal_id: str | None = None,
        expand_principal: bool = False,
        top: int | None = None,
    ) -> AsyncIterator[RoleEligibilitySchedule]:
        """Eligibility schedules: the durable record of who may activate what."""
        return self._inventory(
            RoleEligibilitySchedule,
            "roleEligibilitySchedules",
            expand_principal=expand_principal,
            top=top,
            roleDefinitionId=role_definition_id,
            principalId=principal_id,
        )

    def iter_eligibility_schedule_instances(
        self,
        *,
        role_definition_id: str | None = None,
        principal_id: str | None = None,
        member_type: str | None = None,
        expand_principal: bool = False,
        top: int | None = None,
    ) -> AsyncIterator[RoleEligibilityScheduleInstance]:
        """Eligibilities in effect now (``member_type`` ``Direct``/``Group``/``Inherited``)."""
        return self._inventory(
            RoleEligibilityScheduleInstance,
            "roleEligibilityScheduleInstances",
            expand_principal=expand_principal,
            top=top,
            roleDefinitionId=role_definition_id,
            principalId=principal_id,
            memberType=member_type,
        )

    # -- schedule requests ---------------------------------------------------------------------

    async def _create_request(
        self, kind: ScheduleKind, req: ScheduleRequestCreate
    ) -> ScheduleRequest:
        response = await self._requester.request(
            "POST", _REQUESTS_PATH[kind], json_body=req.to_graph()
        )
        return _parse(ScheduleRequest, json_object(response))

    async def create_eligibility_request(self, req: ScheduleRequestCreate) -> ScheduleRequest:
        """``POST …/roleEligibilityScheduleRequests`` (``adminAssign`` creates an eligibility,
        ``adminRemove`` deletes one). A lost answer raises ``GraphOutcomeUnknownError``."""
        return await self._create_request("eligibility", req)

    async def create_assignment_request(self, req: ScheduleRequestCreate) -> ScheduleRequest:
        """``POST …/roleAssignmentScheduleRequests`` (active assignments; ``adminRemove`` also
        removes assignments made outside PIM)."""
        return await self._create_request("assignment", req)

    async def get_eligibility_request(self, id: str) -> ScheduleRequest:
        """Re-read a request, e.g. to poll a ``PendingProvisioning`` one."""
        path = f"{_REQUESTS_PATH['eligibility']}/{path_segment(id)}"
        return _parse(ScheduleRequest, await self._get(path))

    async def get_assignment_request(self, id: str) -> ScheduleRequest:
        """Re-read an assignment request (activations included)."""
        path = f"{_REQUESTS_PATH['assignment']}/{path_segment(id)}"
        return _parse(ScheduleRequest, await self._get(path))

    async def cancel_assignment_request(self, id: str) -> None:
        """Withdraw a scheduled (``Granted``) request; cancelling a provisioned one is a 400."""
        path = f"{_REQUESTS_PATH['assignment']}/{path_segment(id)}/cancel"
        await self._requester.request("POST", path)

    async def cancel_eligibility_request(self, id: str) -> None:
        """Withdraw a scheduled eligibility request (same rules as for assignments)."""
        path = f"{_REQUESTS_PATH['eligibility']}/{path_segment(id)}/cancel"
        await self._requester.request("POST", path)

    async def _iter_requests(
        self,
        kind: ScheduleKind,
        *,
        principal_id: str | None,
        role_definition_id: str | None,
        status: str | None,
        action: ScheduleRequestAction | None,
        top: int | None = None,
    ) -> AsyncIterator[ScheduleRequest]:
        params = query_params(
            odata_filter(
                principalId=principal_id, roleDefinitionId=role_definition_id, status=status
            ),
            top=top,
        )
        async for request in self._iter(ScheduleRequest, _REQUESTS_PATH[kind], params):
            if action is None or request.action_kind is action:
                yield request

    def iter_assignment_requests(
        self,
        *,
        principal_id: str | None = None,
        role_definition_id: str | None = None,
        status: str | None = None,
        action: ScheduleRequestAction | None = None,
        top: int | None = None,
    ) -> AsyncIterator[ScheduleRequest]:
        """Assignment schedule requests (activations are ``action=selfActivate``). ``action`` is
        filtered client-side: it is not documented as filterable (reference §11.2)."""
        return self._iter_requests(
            "assignment",
            principal_id=principal_id,
            role_definition_id=role_definition_id,
            status=status,
            action=action,
            top=top,
        )

    def iter_eligibility_requests(
        self,
        *,
        principal_id: str | None = None,
        role_definition_id: str | None = None,
        status: str | None = None,
        action: ScheduleRequestAction | None = None,
    ) -> AsyncIterator[ScheduleRequest]:
        """Eligibility schedule requests; ``action`` is filtered client-side."""
        return self._iter_requests(
            "eligibility",
            principal_id=principal_id,
            role_definition_id=role_definition_id,
            status=status,
            action=action,
        )

    # -- role settings (policies) --------------------------------------------------------------

    async def get_policy_assignment(
        self, role_definition_id: str, *, expand_rules: bool = False
    ) -> PolicyAssignment:
        """The tenant-wide policy assignment of a directory role; ``policy_id`` is Graph's,
        verbatim (never constructed). Raises ``GraphNotFoundError`` if the role has none."""
        text = (
            "scopeId eq '/' and scopeType eq 'DirectoryRole' and "
            f"roleDefinitionId eq {odata_quote(role_definition_id)}"
        )
        params = query_params(text, expand="policy($expand=rules)" if expand_rules else None)
        async with aclosing(self._iter(PolicyAssignment, POLICY_ASSIGNMENTS, params)) as found:
            async for assignment in found:
                return assignment
        raise GraphNotFoundError(
            f"no role management policy is assigned to role {role_definition_id}",
            method="GET",
            path=POLICY_ASSIGNMENTS,
        )

    async def list_policy_rules(self, policy_id: str) -> list[PolicyRule]:
        """The policy's 17 rules, each typed by ``@odata.type``."""
        path = f"{POLICIES}/{path_segment(policy_id)}/rules"
        return [_parse_rule(raw) async for raw in self._requester.iter_values(path)]

    async def get_policy_rule(self, policy_id: str, rule_id: str) -> PolicyRule:
        """One rule as read: keep it as the snapshot to PATCH back on rollback."""
        path = f"{POLICIES}/{path_segment(policy_id)}/rules/{path_segment(rule_id)}"
        return _parse_rule(await self._get(path))

    async def update_policy_rule(self, policy_id: str, rule: PolicyRule) -> PolicyRule | None:
        """PATCH the whole rule (its ``@odata.type``, ``id``, ``target`` and every property as
        read). Graph answers 204, or 200 with the rule (newer docs); the latter is returned."""
        path = f"{POLICIES}/{path_segment(policy_id)}/rules/{path_segment(rule.id)}"
        response = await self._requester.request("PATCH", path, json_body=rule.to_patch_body())
        if response.status == 204 or not response.content.strip():
            return None
        return _parse_rule(json_object(response))

    # -- access reviews -------------------------------------------------------------------------

    async def create_access_review_definition(
        self, body: AccessReviewDefinitionCreate
    ) -> AccessReviewDefinition:
        """Create a review definition (201). Not retried after a lost answer: look it up by
        ``display_name`` before creating it again."""
        response = await self._requester.request(
            "POST", REVIEW_DEFINITIONS, json_body=body.to_graph()
        )
        return _parse(AccessReviewDefinition, json_object(response))

    async def get_access_review_definition(self, id: str) -> AccessReviewDefinition:
        """One review definition; 404 once deleted."""
        return _parse(
            AccessReviewDefinition, await self._get(f"{REVIEW_DEFINITIONS}/{path_segment(id)}")
        )

    async def delete_access_review_definition(self, id: str) -> None:
        """Delete (204). A 404 raises ``GraphNotFoundError``: treat it as already gone."""
        await self._requester.request("DELETE", f"{REVIEW_DEFINITIONS}/{path_segment(id)}")

    def iter_access_review_definitions(
        self, *, display_name: str | None = None
    ) -> AsyncIterator[AccessReviewDefinition]:
        """Review definitions, optionally only those with exactly this ``display_name``."""
        params = query_params(odata_filter(displayName=display_name))
        return self._iter(AccessReviewDefinition, REVIEW_DEFINITIONS, params)

    # -- directory, licensing, mail, audit ------------------------------------------------------

    async def list_subscribed_skus(self) -> list[SubscribedSku]:
        """All SKUs (``$filter`` is not supported here; filter client-side, e.g.
        :func:`~app.graph.models.has_entra_id_p2`)."""
        return [sku async for sku in self._iter(SubscribedSku, "/subscribedSkus")]

    async def get_user(self, id_or_upn: str, *, select: Sequence[str] | None = None) -> User:
        """A user by object id or user principal name (``#EXT#`` guests are encoded); ``select``
        asks for properties Graph does not return by default, such as ``identities``."""
        params = {"$select": ",".join(select)} if select else None
        return _parse(User, await self._get(f"/users/{path_segment(id_or_upn)}", params))

    async def get_users(
        self, ids: Sequence[str], *, select: Sequence[str] | None = None
    ) -> dict[str, User | GraphError]:
        """Several users by object id, twenty per ``$batch`` round trip: each id's user or the
        error Graph answered for it (``GraphNotFoundError`` for an id that is not a user)."""
        query = "?" + encode_query({"$select": ",".join(select)}) if select else ""
        unique = list(dict.fromkeys(ids))
        answers = await self.batch(
            [
                BatchRequest(id=str(index), method="GET", url=f"/users/{path_segment(id)}{query}")
                for index, id in enumerate(unique)
            ]
        )
        found: dict[str, User | GraphError] = {}
        for index, id in enumerate(unique):
            answer = answers[str(index)]
            if answer.error is not None:
                found[id] = answer.error
                continue
            try:
                found[id] = _parse(User, answer.json_object())
            except GraphUnexpectedResponseError as exc:
                found[id] = exc
        return found

    async def get_group(self, id: str) -> Group:
        """A group by object id."""
        return _parse(Group, await self._get(f"/groups/{path_segment(id)}"))

    def iter_group_transitive_members(self, group_id: str) -> AsyncIterator[DirectoryObject]:
        """Members of a group including nested groups' members (users, groups, devices, SPs)."""
        path = f"/groups/{path_segment(group_id)}/transitiveMembers"
        return self._iter(DirectoryObject, path)

    async def get_directory_objects(
        self, ids: Sequence[str], *, types: Sequence[str] | None = None
    ) -> list[DirectoryObject]:
        """Resolve object ids (any kind) via ``POST /directoryObjects/getByIds``, 1,000 per call.
        Unknown ids are simply absent from the result; order is not guaranteed."""
        found: list[DirectoryObject] = []
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), GET_BY_IDS_CHUNK):
            body: JsonObject = {"ids": list(unique[start : start + GET_BY_IDS_CHUNK])}
            if types:
                body["types"] = list(types)
            async for raw in self._post_collection("/directoryObjects/getByIds", body):
                found.append(_parse(DirectoryObject, raw))
        return found

    async def _post_collection(self, path: str, body: JsonObject) -> AsyncIterator[JsonObject]:
        """A read-only POST returning a collection (retry-safe; further pages are GETs)."""
        response = await self._requester.request("POST", path, json_body=body, idempotent=True)
        page = json_object(response)
        values = page.get("value")
        for item in values if isinstance(values, list) else []:
            if isinstance(item, dict):
                yield item
        next_link = page.get("@odata.nextLink")
        if isinstance(next_link, str) and next_link:
            async for item in self._requester.iter_values(next_link):
                yield item

    async def get_organization(self) -> Organization:
        """The tenant's organization object (tenant id, name, verified domains)."""
        page = await self._get("/organization")
        values = page.get("value")
        if not isinstance(values, list) or not values or not isinstance(values[0], dict):
            raise GraphUnexpectedResponseError("/organization returned no organization")
        return _parse(Organization, values[0])

    async def send_mail(
        self, sender: str, message: MailMessage, *, save_to_sent_items: bool = False
    ) -> None:
        """``POST /users/{sender}/sendMail`` (202: accepted, not yet delivered). Not retried
        after a lost answer: a duplicate mail is worse than a ``GraphOutcomeUnknownError``."""
        body = SendMailRequest(message=message, save_to_sent_items=save_to_sent_items)
        await self._requester.request(
            "POST", f"/users/{path_segment(sender)}/sendMail", json_body=body.to_graph()
        )

    async def find_sent_message(self, sender: str, property_id: str, value: str) -> bool:
        """Whether ``sender``'s Sent Items hold a message whose extended property ``property_id``
        equals ``value`` - how a send whose answer was lost is verified before sending again
        (Graph: filter messages on ``singleValueExtendedProperties/any(...)``)."""
        text = (
            f"singleValueExtendedProperties/any(ep: ep/id eq {odata_quote(property_id)} "
            f"and ep/value eq {odata_quote(value)})"
        )
        path = f"/users/{path_segment(sender)}/mailFolders/sentitems/messages"
        page = await self._get(path, {"$filter": text, "$select": "id"})
        values = page.get("value")
        return isinstance(values, list) and len(values) > 0

    def iter_directory_audits(
        self,
        *,
        since: datetime | None = None,
        activity_display_name: str | None = None,
        category: str | None = None,
    ) -> AsyncIterator[DirectoryAudit]:
        """Directory audit records, paced for the reports bucket (5 requests / 10 s).

        ``category`` is not in the documented filter list (works per third parties); prefer
        ``activity_display_name`` + ``since``.
        """
        conditions = []
        if since is not None:
            conditions.append(f"activityDateTime ge {odata_datetime(since)}")
        text = odata_filter(activityDisplayName=activity_display_name, category=category)
        if text:
            conditions.append(text)
        params = query_params(" and ".join(conditions) or None)
        return self._iter(
            DirectoryAudit, "/auditLogs/directoryAudits", params, bucket=Bucket.reports
        )
