"""The comms page: previewed by operators before sending, served at a stable URL per phase."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.api.auth import RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.services.comms_preview import render_phase_comms

router = APIRouter(tags=["comms"])

# The page is static text: no scripts, no frames, nothing loaded from elsewhere.
COMMS_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


@router.get("/api/v1/plans/{plan_id}/phases/{phase_key}/comms/preview")
def comms_preview(
    plan_id: str, phase_key: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer
) -> dict[str, Any]:
    """The mail a phase sends, rendered now (subject, HTML and plain text)."""
    with db.reading() as session:
        rendered = render_phase_comms(
            session, plan_id=plan_id, phase_key=phase_key, public_url=ctx.settings.public_url
        )
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}


@router.get("/comms/{plan_id}/{phase_key}", response_class=HTMLResponse)
def comms_page(plan_id: str, phase_key: str, db: DatabaseDep, ctx: ContextDep) -> HTMLResponse:
    """The one-page comms linked from the mail; the plan id is an unguessable UUID."""
    with db.reading() as session:
        rendered = render_phase_comms(
            session, plan_id=plan_id, phase_key=phase_key, public_url=ctx.settings.public_url
        )
    return HTMLResponse(
        rendered.html,
        headers={
            "Content-Security-Policy": COMMS_PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
