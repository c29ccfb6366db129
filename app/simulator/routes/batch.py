"""``POST /$batch`` (reference §2.4, concepts/json-batching.md).

* at most 20 requests; ids unique; a body needs a Content-Type header; ``url`` is relative to the
  version; otherwise the whole batch is refused with 400;
* ``dependsOn`` orders execution; a request whose dependency failed gets 424;
* the outer status is 200 and every item has its own status, headers and body;
* items come back in a shuffled (seeded) order, so callers must correlate by ``id``;
* every item is authorised and throttled individually; a throttled item gets 429 and its own
  ``Retry-After``. The ``$batch`` call itself costs no resource units.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from app.simulator import errors
from app.simulator.dispatch import GraphRequest, GraphResponse, Router, SimContext
from app.simulator.errors import GraphError
from app.simulator.routes import common

MAX_REQUESTS = 20
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


def _invalid(message: str) -> GraphError:
    return errors.bad_request(message)


def _validate(body: object) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _invalid("The batch body must be an object with a 'requests' array.")
    items: list[dict[str, Any]] = body["requests"]
    if not items:
        raise _invalid("The batch must contain at least one request.")
    if len(items) > MAX_REQUESTS:
        raise _invalid(f"Number of requests ({len(items)}) exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise _invalid("Each batch request must be an object.")
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise _invalid("Each batch request needs a non-empty string 'id'.")
        if item_id in seen:
            raise _invalid(f"Batch request ids must be unique; '{item_id}' is repeated.")
        seen.add(item_id)
        if str(item.get("method", "")).upper() not in METHODS:
            raise _invalid(f"Request '{item_id}' has an invalid or missing method.")
        if not isinstance(item.get("url"), str) or not item["url"]:
            raise _invalid(f"Request '{item_id}' needs a 'url'.")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise _invalid(f"Request '{item_id}': 'headers' must be an object.")
        has_type = any(str(k).lower() == "content-type" for k in headers)
        if item.get("body") is not None and not has_type:
            raise _invalid(f"Request '{item_id}' has a body but no Content-Type header.")
    for item in items:
        depends = item.get("dependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _invalid(f"Request '{item['id']}': 'dependsOn' must be a list of ids.")
        for dependency in depends:
            if dependency not in seen or dependency == item["id"]:
                raise _invalid(f"Request '{item['id']}' depends on unknown request '{dependency}'.")
    return items


def _execution_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    remaining = list(items)
    while remaining:
        ready = [i for i in remaining if set(i.get("dependsOn") or []) <= done]
        if not ready:
            raise _invalid("The dependsOn references form a cycle.")
        first = ready[0]
        order.append(first)
        done.add(first["id"])
        remaining.remove(first)
    return order


def _inner_request(outer: GraphRequest, item: dict[str, Any]) -> GraphRequest:
    url: str = item["url"]
    if "://" in url:
        raise _invalid(f"Request '{item['id']}': the url must be relative to the version.")
    path, _, query = url.lstrip("/").partition("?")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        key = key.strip()
        params[key.lower() if key.startswith("$") else key] = value
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    if "client-request-id" in outer.headers and "client-request-id" not in headers:
        headers["client-request-id"] = outer.headers["client-request-id"]
    return GraphRequest(
        method=str(item["method"]).upper(),
        path=path.strip("/"),
        params=params,
        headers=headers,
        body=item.get("body"),
        base_url=outer.base_url,
        request_id=str(uuid.uuid4()),
        in_batch=True,
    )


def _item(item_id: str, response: GraphResponse) -> dict[str, Any]:
    headers = {"Cache-Control": "no-cache", **response.headers}
    entry: dict[str, Any] = {"id": item_id, "status": response.status, "headers": headers}
    if response.body is not None:
        headers["Content-Type"] = "application/json"
        entry["body"] = response.body
    return entry


def run_batch(ctx: SimContext, request: GraphRequest, _: dict[str, str]) -> GraphResponse:
    items = _validate(common.json_body(request))
    order = _execution_order(items)
    statuses: dict[str, int] = {}
    responses: dict[str, dict[str, Any]] = {}
    for item in order:
        failed = [d for d in item.get("dependsOn") or [] if statuses.get(d, 0) >= 400]
        if failed:
            error = GraphError(
                424,
                "FailedDependency",
                f"The request depends on failed request(s) {', '.join(failed)}.",
            )
            response = ctx.error_response(request, error)
        else:
            try:
                inner = _inner_request(request, item)
            except GraphError as error:
                response = ctx.error_response(request, error)
            else:
                if inner.path.lower() == "$batch":
                    response = ctx.error_response(
                        inner, _invalid("A batch cannot contain a $batch.")
                    )
                else:
                    response = ctx.process(inner).response
        statuses[item["id"]] = response.status
        responses[item["id"]] = _item(item["id"], response)
    shuffled = ctx.faults.shuffle([item["id"] for item in items])
    return GraphResponse(200, {"responses": [responses[i] for i in shuffled]})


def register(router: Router) -> None:
    router.add("POST", "$batch", run_batch)
