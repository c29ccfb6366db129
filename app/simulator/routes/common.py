"""Shared helpers for the Graph routes: list queries, paging, entity answers, licensing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from app.simulator import errors, odata
from app.simulator.dispatch import GraphRequest, GraphResponse, SimContext
from app.simulator.errors import GraphError
from app.simulator.odata import Expand, FilterSpec, Node, Resolver

T = TypeVar("T")

# PIM-service (and access-review) calls in a tenant without P2 (observed on Graph PIM endpoints:
# Galvnyz/M365-Assess#117; same code and message from ARM PIM: JulianHayward/
# Azure-MG-Sub-Governance-Reporting#114).
LICENSE_REQUIRED = "AadPremiumLicenseRequired"


def require_p2(ctx: SimContext) -> None:
    if not ctx.state.p2:
        raise GraphError(400, LICENSE_REQUIRED, "The tenant needs an AAD Premium 2 license.")


@dataclass(frozen=True)
class ListQuery:
    node: Node | None
    select: list[str] | None
    expand: list[Expand]
    top: int | None
    skiptoken: str | None


def list_query(
    request: GraphRequest,
    *,
    filter_spec: FilterSpec | None,
    expandable: Iterable[str] = (),
    selectable: Iterable[str] = (),
    type_name: str = "",
    top_max: int = 999,
) -> ListQuery:
    params = request.params
    node = None
    if "$filter" in params:
        if filter_spec is None:
            raise errors.bad_request("$filter is not supported on this resource.")
        node = odata.parse_filter(params["$filter"])
        filter_spec.check(node)
    select = odata.parse_select(params.get("$select"))
    odata.check_select(select, selectable, type_name)
    expand = odata.parse_expand(params.get("$expand"))
    allowed = {name.lower() for name in expandable}
    for item in expand:
        if item.name.lower() not in allowed:
            raise errors.bad_request(
                f"Could not find a navigation property named '{item.name}' on type '{type_name}'."
            )
    return ListQuery(
        node=node,
        select=select,
        expand=expand,
        top=odata.parse_top(params.get("$top"), maximum=top_max),
        skiptoken=params.get("$skiptoken"),
    )


def context_url(request: GraphRequest, fragment: str) -> str:
    return f"{request.base_url}/$metadata#{fragment}"


def next_link(request: GraphRequest, token: str) -> str:
    params = {k: v for k, v in request.params.items() if k != "$skiptoken"}
    params["$skiptoken"] = token
    query = "&".join(
        f"{quote(key, safe='$')}={quote(value, safe=chr(39) + '$(),/:=@')}"
        for key, value in params.items()
    )
    return f"{request.base_url}/{request.path}?{query}"


def filtered(
    items: Iterable[T], node: Node | None, resolver: Resolver = odata.resolve_mapping
) -> list[T]:
    if node is None:
        return list(items)
    return [item for item in items if odata.evaluate(node, item, resolver)]


def collection(
    ctx: SimContext,
    request: GraphRequest,
    items: Sequence[T],
    *,
    key: Callable[[T], Any],
    render: Callable[[T], dict[str, Any]],
    query: ListQuery,
    fragment: str,
    selectable: Iterable[str],
    type_name: str,
) -> GraphResponse:
    """A Graph collection answer: one page, ``@odata.nextLink`` when more remain."""
    size = min(query.top or ctx.limits.page_size, ctx.limits.max_page_size)
    chunk, token = odata.page(items, key, skiptoken=query.skiptoken, size=size)
    return page_answer(
        request,
        chunk,
        token,
        render=render,
        query=query,
        fragment=fragment,
        selectable=selectable,
        type_name=type_name,
        count=lambda: len(items),
    )


def after_position(query: ListQuery) -> Any:
    """The sort key of the last item the previous page returned (None on a first page)."""
    return odata.decode_token(query.skiptoken) if query.skiptoken else None


def lazy_collection(
    ctx: SimContext,
    request: GraphRequest,
    rows: Iterable[T],
    *,
    key: Callable[[T], Any],
    render: Callable[[T], dict[str, Any]],
    query: ListQuery,
    fragment: str,
    selectable: Iterable[str],
    type_name: str,
    resolver: Resolver,
    count: Callable[[], int],
) -> GraphResponse:
    """A collection page from ``rows`` in output order, already positioned after the page token
    (see :func:`after_position`): only one page worth of rows is filtered and rendered, so a
    large collection costs a page per request, not the whole collection."""
    size = min(query.top or ctx.limits.page_size, ctx.limits.max_page_size)
    chunk: list[T] = []
    more = False
    for row in rows:
        if query.node is not None and not odata.evaluate(query.node, row, resolver):
            continue
        if len(chunk) == size:
            more = True
            break
        chunk.append(row)
    token = odata.encode_token(key(chunk[-1])) if more and chunk else None
    return page_answer(
        request,
        chunk,
        token,
        render=render,
        query=query,
        fragment=fragment,
        selectable=selectable,
        type_name=type_name,
        count=count,
    )


def page_answer(
    request: GraphRequest,
    chunk: Sequence[T],
    token: str | None,
    *,
    render: Callable[[T], dict[str, Any]],
    query: ListQuery,
    fragment: str,
    selectable: Iterable[str],
    type_name: str,
    count: Callable[[], int],
) -> GraphResponse:
    known = list(selectable)
    # Expanded navigation properties come back alongside the $select-ed ones.
    names = None if query.select is None else query.select + [e.name for e in query.expand]
    values = [odata.apply_select(render(item), names, known, type_name) for item in chunk]
    body: dict[str, Any] = {"@odata.context": context_url(request, fragment)}
    if request.params.get("$count", "").lower() == "true":
        body["@odata.count"] = count()
    body["value"] = values
    if token:
        body["@odata.nextLink"] = next_link(request, token)
    return GraphResponse(200, body)


def entity(
    request: GraphRequest, fragment: str, item: dict[str, Any], status: int = 200
) -> GraphResponse:
    return GraphResponse(status, {"@odata.context": context_url(request, fragment), **item})


def expand_fragment(base: str, expand: list[Expand]) -> str:
    if not expand:
        return base
    return f"{base}({','.join(e.name + '()' for e in expand)})"


def select_expanded(
    item: dict[str, Any] | None, expand: Expand, known: Iterable[str], type_name: str
) -> dict[str, Any] | None:
    if item is None:
        return None
    return odata.apply_select(
        item, odata.parse_select(expand.options.get("$select")), known, type_name
    )


def json_body(request: GraphRequest) -> Any:
    if request.body_error:
        raise errors.bad_request(f"The request body is not valid JSON: {request.body_error}")
    if request.body is None:
        raise errors.bad_request("A request body is required.")
    return request.body
