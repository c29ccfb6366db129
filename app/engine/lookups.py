"""Batched read-backs: does this (principal, role, scope) hold an eligible / active assignment?

Confirmation after each write (invariant 1) costs one read per item; ``$batch`` puts twenty of
them in one HTTP round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.graph.client import GraphClient
from app.graph.errors import GraphError
from app.graph.models import BatchRequest
from app.graph.requester import encode_query, odata_quote

DIRECTORY = "/roleManagement/directory"


@dataclass(frozen=True)
class Target:
    principal_id: str
    role_id: str
    scope: str

    def odata(self, extra: str = "") -> str:
        text = (
            f"principalId eq {odata_quote(self.principal_id)} and "
            f"roleDefinitionId eq {odata_quote(self.role_id)}"
        )
        return text + extra


class LookupError_(Exception):
    """A read-back failed: the item's state is unknown for now."""


def _url(collection: str, target: Target, extra: str = "") -> str:
    return f"{DIRECTORY}/{collection}?" + encode_query({"$filter": target.odata(extra)})


async def _lookup(
    client: GraphClient, collection: str, targets: Sequence[Target], extra: str = ""
) -> dict[Target, str | GraphError | None]:
    """For each target the id of a matching schedule (same scope), None if none, or the error."""
    requests = [
        BatchRequest(id=str(index), method="GET", url=_url(collection, target, extra))
        for index, target in enumerate(targets)
    ]
    answers = await client.batch(requests) if requests else {}
    found: dict[Target, str | GraphError | None] = {}
    for index, target in enumerate(targets):
        answer = answers[str(index)]
        if answer.error is not None:
            found[target] = answer.error
            continue
        values = answer.json_object().get("value")
        match: str | None = None
        for value in values if isinstance(values, list) else []:
            if not isinstance(value, dict):
                continue
            scope = value.get("directoryScopeId") or "/"
            if scope == target.scope and isinstance(value.get("id"), str):
                match = str(value["id"])
                break
        found[target] = match
    return found


async def eligibility_schedules(
    client: GraphClient, targets: Sequence[Target]
) -> dict[Target, str | GraphError | None]:
    return await _lookup(client, "roleEligibilitySchedules", targets)


async def assigned_instances(
    client: GraphClient, targets: Sequence[Target]
) -> dict[Target, str | GraphError | None]:
    """Standing (admin-assigned) active assignments; activations of an eligibility don't count."""
    return await _lookup(
        client, "roleAssignmentScheduleInstances", targets, " and assignmentType eq 'Assigned'"
    )
