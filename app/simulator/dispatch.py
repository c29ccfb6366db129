"""The transport-free core of the simulated Graph: routing, permissions, throttling, faults.

A ``GraphRequest`` goes through :meth:`Dispatcher.process` whether it arrived over HTTP or as
one item of a ``$batch``, so batch items are authorised, throttled and faulted exactly like
single calls (reference §2.4: "each inner request is throttled individually").
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from app.simulator import errors, lifecycle
from app.simulator.clock import Clock
from app.simulator.errors import GraphError, error_body
from app.simulator.faults import FaultInjector, SimLimits
from app.simulator.pim import RequestEngine
from app.simulator.state import SimState
from app.simulator.throttle import Charge, Throttler, Verdict, charge_for


@dataclass
class GraphRequest:
    method: str
    path: str  # relative to /v1.0, without leading or trailing slash
    params: dict[str, str]  # query options; $-option names lower-cased and trimmed
    headers: dict[str, str]  # lower-cased names
    body: Any = None
    body_error: str | None = None
    base_url: str = "https://graph.microsoft.com/v1.0"
    request_id: str = ""
    in_batch: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    response: GraphResponse
    lost: bool = False


Handler = Callable[["SimContext", GraphRequest, dict[str, str]], GraphResponse]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Handler
    any_of: frozenset[str]
    all_of: frozenset[str] = frozenset()
    # PIM-service endpoints answer a missing permission with PermissionScopeNotGranted wrapped
    # in UnknownError (observed: microsoft-graph-docs#22292, terraform-provider-azuread#1727);
    # directory-backed ones with Authorization_RequestDenied (reference §5.5).
    pim_service: bool = False

    @property
    def name(self) -> str:
        return "/".join(self.pattern)


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        any_of: Iterable[str] = (),
        all_of: Iterable[str] = (),
        pim_service: bool = False,
    ) -> None:
        self.routes.append(
            Route(
                method,
                tuple(path.strip("/").split("/")),
                handler,
                frozenset(any_of),
                frozenset(all_of),
                pim_service,
            )
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segments = [s for s in path.split("/") if s]
        allowed_methods: set[str] = set()
        for route in self.routes:
            params = _match(route.pattern, segments)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed_methods.add(route.method)
        if allowed_methods:
            raise GraphError(
                405,
                errors.REQUEST_BAD_REQUEST,
                "Specified HTTP method is not allowed for the request target.",
            )
        unknown = _first_unknown_segment(self.routes, segments)
        raise errors.bad_request(f"Resource not found for the segment '{unknown}'.")


REQUEST_LOG_SIZE = 10_000

_KEY_SEGMENT = re.compile(r"^(?P<name>[^(]+)\('?(?P<key>[^')]+)'?\)$")


def _match(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    expanded: list[str] = []
    for segment in segments:  # OData key syntax users('id') == users/id
        key = _KEY_SEGMENT.match(segment)
        expanded.extend([key["name"], key["key"]] if key else [segment])
    if len(pattern) != len(expanded):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(pattern, expanded, strict=True):
        if expected.startswith("{"):
            params[expected[1:-1]] = actual
        elif expected.lower() != actual.lower():
            return None
    return params


def _first_unknown_segment(routes: list[Route], segments: list[str]) -> str:
    for depth in range(len(segments), 0, -1):
        prefix = segments[:depth]
        if any(
            _match(r.pattern[:depth], prefix) is not None for r in routes if len(r.pattern) >= depth
        ):
            return segments[depth] if depth < len(segments) else segments[-1]
    return segments[0] if segments else ""


class SimContext:
    """Everything a handler may touch; one per simulator app."""

    def __init__(self, state: SimState, limits: SimLimits, clock: Clock, router: Router) -> None:
        self.state = state
        self.limits = limits
        self.clock = clock
        self.router = router
        self.faults = FaultInjector(limits.seed)
        self.throttler = Throttler(limits, len(state.users), state.caller_app_id, state.tenant_id)
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self.request_log: deque[tuple[str, str, int, float]] = deque(maxlen=REQUEST_LOG_SIZE)
        """(method, URL, status, Unix time answered) of the latest requests, for benchmarks."""
        self.throttled = 0
        self.faulted = 0
        self.lost = 0

    @property
    def engine(self) -> RequestEngine:
        return RequestEngine(
            self.state,
            min_change_interval=timedelta(seconds=self.limits.min_change_interval_seconds),
        )

    def set_limits(self, limits: SimLimits) -> None:
        previous = self.limits
        self.limits = limits
        if limits.seed != previous.seed:
            self.faults.reseed(limits.seed)
        self.throttler.configure(limits, len(self.state.users), now=self.clock.monotonic())

    # --- the pipeline --------------------------------------------------------------------
    def error_response(self, request: GraphRequest, error: GraphError) -> GraphResponse:
        body = error_body(
            error,
            request_id=request.request_id,
            client_request_id=request.header("client-request-id"),
            now=self.clock.now(),
        )
        return GraphResponse(error.status, body, dict(error.headers))

    def process(self, request: GraphRequest) -> Outcome:
        outcome = self._process(request)
        response = outcome.response
        response.headers.setdefault("request-id", request.request_id)
        response.headers.setdefault(
            "client-request-id", request.header("client-request-id") or request.request_id
        )
        return outcome

    def _process(self, request: GraphRequest) -> Outcome:
        if not request.in_batch and not _bearer(request.header("authorization")):
            return Outcome(
                self.error_response(
                    request,
                    GraphError(
                        401,
                        errors.INVALID_AUTH_TOKEN,
                        "Access token is empty."
                        if not request.header("authorization")
                        else "Access token validation failure: a Bearer token is required.",
                    ),
                )
            )
        lifecycle.advance(self.state, self.clock.now())
        try:
            route, params = self.router.match(request.method, request.path)
        except GraphError as error:
            self.stats[(request.method, "<no route>", error.status)] += 1
            return Outcome(self.error_response(request, error))
        if request.path.strip("/").lower() == "$batch":
            # The outer $batch pays nothing itself; its items pay their own way.
            return self._run(route, request, params, Verdict(Charge(0, 0, 0)))
        denied = self._permission_error(route)
        if denied is not None:
            self.stats[(request.method, route.name, denied.status)] += 1
            return Outcome(self.error_response(request, denied))
        verdict = self.throttler.ask(
            charge_for(request.method, request.path, request.params), self.clock.monotonic()
        )
        if verdict.retry_after is not None:
            self.throttled += 1
            self.stats[(request.method, route.name, 429)] += 1
            return Outcome(self._throttled(request, verdict))
        return self._run(route, request, params, verdict)

    def _run(
        self, route: Route, request: GraphRequest, params: dict[str, str], verdict: Verdict
    ) -> Outcome:
        fault = self.faults.fault(self.limits.fault_rate)
        if fault is not None:
            self.faulted += 1
            response = self._fault(request, fault)
        else:
            try:
                response = route.handler(self, request, params)
            except GraphError as error:
                response = self.error_response(request, error)
        if verdict.charge.resource_units:
            response.headers["x-ms-resource-unit"] = str(verdict.charge.resource_units)
        if verdict.usage >= 0.8:
            response.headers["x-ms-throttle-limit-percentage"] = f"{min(verdict.usage, 1.8):.2f}"
        self.stats[(request.method, route.name, response.status)] += 1
        lost = not request.in_batch and self.faults.lost(self.limits.lost_response_rate)
        if lost:
            self.lost += 1
        return Outcome(response, lost)

    def _permission_error(self, route: Route) -> GraphError | None:
        granted = self.state.granted_permissions
        if (not route.any_of or route.any_of & granted) and route.all_of <= granted:
            return None
        needed = sorted(route.any_of) + sorted(route.all_of - granted)
        if route.pim_service:
            scopes = ",".join(sorted(route.any_of or route.all_of))
            message = (
                '{"errorCode":"PermissionScopeNotGranted","message":"Authorization failed due to '
                f'missing permission scope {scopes}.","instanceAnnotations":[]}}'
            )
            return GraphError(403, "UnknownError", message)
        return GraphError(
            403,
            errors.AUTHORIZATION_DENIED,
            "Insufficient privileges to complete the operation. "
            f"Requires one of: {', '.join(needed)}.",
        )

    def _throttled(self, request: GraphRequest, verdict: Verdict) -> GraphResponse:
        assert verdict.retry_after is not None
        error = GraphError(
            429,
            errors.TOO_MANY_REQUESTS,
            "Please retry again later.",
            headers={
                "Retry-After": f"{verdict.retry_after:.3f}",
                "x-ms-throttle-scope": verdict.scope,
                "x-ms-throttle-information": verdict.information,
                "x-ms-throttle-limit-percentage": "1.80",
            },
            inner={"code": "429", "message": "Please retry after", "status": "429"},
        )
        return self.error_response(request, error)

    def _fault(self, request: GraphRequest, status: int) -> GraphResponse:
        if status == 503:
            error = GraphError(
                503,
                errors.SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable. Please retry later.",
                headers={
                    "Retry-After": str(
                        self.faults.retry_after(self.limits.unavailable_retry_after_max_seconds)
                    )
                },
            )
        elif status == 504:
            error = GraphError(504, errors.GATEWAY_TIMEOUT, "The gateway timed out.")
        else:
            error = GraphError(500, errors.GENERAL_EXCEPTION, "An internal server error occurred.")
        return self.error_response(request, error)


def _bearer(value: str | None) -> bool:
    if not value:
        return False
    scheme, _, token = value.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())
