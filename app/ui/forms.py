"""Form bodies, validated with pydantic; errors come back per field for the form to show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.datastructures import FormData

from app.ui import csrf

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    messages: ClassVar[Mapping[str, str]] = {}


class LoginForm(_Form):
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    next: str | None = None
    messages: ClassVar[Mapping[str, str]] = {"token": "Paste an API token."}


class ActionForm(_Form):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
    phase: Text | None = None
    expected_version: int | None = Field(default=None, ge=1)
    confirm: bool = False
    messages: ClassVar[Mapping[str, str]] = {
        "reason": "Give a reason (3 to 1000 characters); it is recorded in the plan's history.",
        "expected_version": "The page's plan version is not a number; reload the page.",
    }


class PlanForm(_Form):
    tenant_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    template: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    messages: ClassVar[Mapping[str, str]] = {
        "tenant_id": "Choose a tenant.",
        "template": "Choose a plan template.",
        "name": "The name can be at most 200 characters.",
    }


class TenantForm(_Form):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200_000)]
    messages: ClassVar[Mapping[str, str]] = {
        "body": "Paste the tenant as JSON (the body POST /api/v1/tenants accepts)."
    }


class FreezeForm(_Form):
    frozen: bool


F = TypeVar("F", bound=_Form)


def values_of(form: FormData) -> dict[str, Any]:
    """Form fields as a dict, without the CSRF token; empty fields count as not given."""
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == csrf.FIELD or not isinstance(value, str):
            continue
        if key == "confirm" or key == "frozen":
            values[key] = value in {"yes", "on", "true", "1"}
        elif value.strip() != "" or key in {"reason", "token", "name", "body"}:
            values[key] = value
    return values


def parse(model: type[F], form: FormData) -> tuple[F | None, dict[str, str]]:
    """The validated form, or the field errors (one message per field)."""
    try:
        return model.model_validate(values_of(form)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(name, model.messages.get(name, str(error["msg"])))
        return None, errors
