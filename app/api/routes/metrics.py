"""``GET /metrics``: Prometheus text format, open like ``/healthz``.

Open on purpose (scrapers carry no API token): it exposes counts by state, method, status and
route template only: no secrets, no tenant, principal or other object ids.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from app import metrics
from app.api.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(ctx: ContextDep) -> Response:
    return Response(metrics.exposition(ctx.session_factory), media_type=metrics.CONTENT_TYPE)
