"""``GET /metrics``: Prometheus text format, open like ``/healthz``.

Open on purpose (scrapers carry no API token): it exposes counts by state, method, status and
route template only: no secrets, no tenant, principal or other object ids.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app import metrics
from app.api.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(db: DatabaseDep) -> Response:
    # A sync handler on purpose: the collectors read the database (in a read-only unit of work)
    # on this worker thread, never on the event loop.
    return Response(metrics.exposition(db), media_type=metrics.CONTENT_TYPE)
