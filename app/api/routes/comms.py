"""The comms page: previewed by operators before sending, served at a stable URL per phase."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from app.api.auth import RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.api.jobs import JobsDep
from app.api.problem_docs import AUTHENTICATED, problems
from app.engine.comms_recipients import comms_for, phase_recipients
from app.services.comms_preview import render_phase_comms

router = APIRouter(tags=["comms"])

# The page is static text: no scripts, no frames, nothing loaded from elsewhere.
COMMS_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)

RecipientQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=320,
        description="a recipient's object id or user principal name: that person's own mail "
        "(only the roles they held and now activate); without it, the overview of every role",
    ),
]


@router.get(
    "/api/v1/plans/{plan_id}/phases/{phase_key}/comms/preview",
    responses={**AUTHENTICATED, **problems(404)},
)
async def comms_preview(
    plan_id: str,
    phase_key: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireViewer,
    recipient: RecipientQuery = None,
) -> dict[str, Any]:
    """The mail a phase sends, rendered now (subject, HTML and plain text).

    With ``recipient``, that person's mail; one the phase does not mail is a 404 naming them.
    """
    rendered, chosen = await comms_for(
        jobs.ectx,
        plan_id=plan_id,
        phase_key=phase_key,
        public_url=ctx.settings.public_url,
        wanted=recipient,
    )
    return {
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "recipient": chosen.to_json() if chosen else None,
    }


@router.get("/api/v1/plans/{plan_id}/phases/{phase_key}/comms/recipients")
async def comms_recipients(
    plan_id: str, phase_key: str, jobs: JobsDep, caller: RequireViewer
) -> list[dict[str, Any]]:
    """Who the phase mails, each with the roles their mail lists.

    From the phase's conversions once it has fixed them; before that, read from the tenant.
    """
    recipients = await phase_recipients(jobs.ectx, plan_id=plan_id, phase_key=phase_key)
    return [r.to_json() for r in recipients]


@router.get("/comms/{plan_id}/{phase_key}", response_class=HTMLResponse, responses=problems(404))
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
