"""Sign in with an API token, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from app.ui import auth, flash, forms
from app.ui.deps import ContextDep, CsrfForm, DatabaseDep
from app.ui.templating import render

router = APIRouter()


@router.get("/", name="home")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("plans").path, status_code=303)


@router.get("/login", name="login")
def login_page(
    request: Request,
    db: DatabaseDep,
    ctx: ContextDep,
    next_path: Annotated[str | None, Query(alias="next")] = None,
) -> Response:
    if auth.session_caller(db, request.session, now=ctx.clock.now()) is not None:
        return RedirectResponse(
            auth.safe_next(next_path, request.url_for("plans").path), status_code=303
        )
    return render(request, "auth/login.html", {"next": next_path or "", "errors": {}})


@router.post("/login", name="login_submit")
def login_submit(request: Request, form: CsrfForm, db: DatabaseDep, ctx: ContextDep) -> Response:
    parsed, errors = forms.parse(forms.LoginForm, form)
    next_path = str(form.get("next") or "")
    if parsed is None:
        return render(
            request, "auth/login.html", {"next": next_path, "errors": errors}, status_code=422
        )
    caller = auth.sign_in(db, request.session, token=parsed.token, now=ctx.clock.now())
    if caller is None:
        return render(
            request,
            "auth/login.html",
            {"next": next_path, "errors": {"token": "That token is unknown or has been revoked."}},
            status_code=401,
        )
    flash.add(request.session, "success", f"Signed in as {caller.name} ({caller.role.value}).")
    return RedirectResponse(
        auth.safe_next(next_path, request.url_for("plans").path), status_code=303
    )


@router.post("/logout", name="logout")
def logout(request: Request, form: CsrfForm) -> RedirectResponse:
    auth.sign_out(request.session)
    flash.add(request.session, "info", "Signed out.")
    return RedirectResponse(request.url_for("login").path, status_code=303)
