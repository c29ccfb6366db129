"""Prometheus metrics: process counters for Graph and HTTP, and database counts at scrape time.

Counters and histograms live in one module-level registry (``REGISTRY``), created once per
process however many apps ``create_app`` builds. Plans, phases, conversions and activations are
counted from the database when scraped (:class:`DatabaseCollector`), so every replica reports the
same numbers. Labels carry states, methods, status codes and route templates only: never a
tenant, principal or object id, never a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.db.repos.metrics import MetricsRepository
from app.db.session import Database
from app.domain.machine import PhaseState, PlanState
from app.domain.progress import WorkItemState
from app.logging import get_logger

log = get_logger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
PREFIX: Final = "pim_rollout"

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GRAPH_REQUESTS = Counter(
    f"{PREFIX}_graph_requests",
    "Exchanges with Microsoft Graph, by method, throttling bucket and HTTP status "
    "(transport_error: no answer).",
    ["method", "bucket", "status"],
    registry=REGISTRY,
)
GRAPH_THROTTLED = Counter(
    f"{PREFIX}_graph_throttled",
    "Answers from Graph with status 429, items inside a $batch included (the client then "
    "waits for Retry-After).",
    ["bucket"],
    registry=REGISTRY,
)
GRAPH_LATENCY = Histogram(
    f"{PREFIX}_graph_request_duration_seconds",
    "Time of one exchange with Graph (each retry counts separately).",
    ["method", "bucket"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "Requests served by this process, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to serve a request, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
COLLECTIONS = Counter(
    f"{PREFIX}_monitoring_collections",
    "Monitoring collection runs per tenant, by result (ok, failed, skipped: another worker).",
    ["result"],
    registry=REGISTRY,
)


class GraphMetrics:
    """The Graph requester's observer (``app.graph.requester.set_request_observer``)."""

    def graph_response(self, *, method: str, bucket: str, status: int, seconds: float) -> None:
        GRAPH_REQUESTS.labels(method, bucket, str(status)).inc()
        GRAPH_LATENCY.labels(method, bucket).observe(seconds)
        if status == 429:
            GRAPH_THROTTLED.labels(bucket).inc()

    def graph_transport_error(self, *, method: str, bucket: str, seconds: float) -> None:
        GRAPH_REQUESTS.labels(method, bucket, "transport_error").inc()
        GRAPH_LATENCY.labels(method, bucket).observe(seconds)

    def graph_batch_items_throttled(self, *, bucket: str, items: int) -> None:
        GRAPH_THROTTLED.labels(bucket).inc(items)


def record_collection(result: str) -> None:
    COLLECTIONS.labels(result).inc()


def record_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def _gauge(
    name: str, documentation: str, label: str, counts: dict[str, int], known: list[str]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=[label])
    for value in sorted(set(known) | set(counts)):
        family.add_metric([value], counts.get(value, 0))
    return family


class DatabaseCollector(Collector):
    """Counts read from the database at scrape time (a custom collector).

    ``collect`` is synchronous (prometheus_client calls it) and blocks on the database: call it
    on a worker thread (``GET /metrics`` is a sync handler), never on the event loop.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_database_up", "1 if the counts below could be read from the database."
        )
        try:
            with self.db.reading() as session:
                repo = MetricsRepository(session)
                plans = repo.plans_by_state()
                phases = repo.phases_by_state()
                items = repo.work_items_by_state()
                requests = repo.requests_by_action_status()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics.database_unavailable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge("plans", "Plans by state.", "state", plans, [s.value for s in PlanState])
        yield _gauge("phases", "Phases by state.", "state", phases, [s.value for s in PhaseState])
        yield _gauge(
            "conversions",
            "Conversion work items (principal, role, scope) by state: done, failed, ...",
            "state",
            items,
            [s.value for s in WorkItemState],
        )
        activations = {
            status: count
            for (action, status), count in requests.items()
            if action == "selfActivate"
        }
        yield _gauge(
            "activations",
            "Collected PIM self-activation requests by request status.",
            "status",
            activations,
            [],
        )


def exposition(db: Database) -> bytes:
    """The text format of the process registry plus this app's database counts.

    Blocks on the database: for a worker thread (see :class:`DatabaseCollector`).
    """
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(db))
    return generate_latest(REGISTRY) + generate_latest(database)
