"""The one-page comms: what changes, what to do when activating, who to call if it breaks.

Rendered from Jinja templates under ``templates/comms/`` with autoescaping on and strict
undefined values, so a missing value fails the render instead of sending a broken mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
    select_autoescape,
)

from app.domain.plan import ApplyRoleSettingsStep, PlanSpec, RequireApprovalStep, RoleSettings
from app.domain.roles import role_name
from app.domain.tenant import CommsSettings

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


class CommsRenderError(Exception):
    """The comms cannot be rendered: a value is missing or the template does not exist."""


@dataclass(frozen=True)
class RoleLine:
    name: str
    max_duration: str
    justification: bool
    ticket: bool
    mfa: bool
    approval: bool


@dataclass(frozen=True)
class RenderedComms:
    subject: str
    html: str
    text: str


def _hours(value: timedelta | None) -> str:
    if value is None:
        return "the tenant's current maximum"
    minutes = int(value.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if rest == 0:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours} h {rest} min" if hours else f"{rest} minutes"


def effective_settings(spec: PlanSpec, phase_key: str) -> dict[str, tuple[RoleSettings, bool]]:
    """Each target role's activation settings and approval once ``phase_key`` has run."""
    settings = {str(r.id): r.settings for r in spec.roles}
    approval = {str(r.id): False for r in spec.roles}
    for phase in spec.phases:
        for step in phase.steps:
            if isinstance(step, ApplyRoleSettingsStep):
                for role_id in spec.role_ids(step.roles):
                    settings[str(role_id)] = settings[str(role_id)].merged(step.settings)
            elif isinstance(step, RequireApprovalStep):
                for rule in step.rules:
                    for role_id in rule.roles:
                        approval[str(role_id)] = True
        if phase.key == phase_key:
            break
    return {role: (settings[role], approval[role]) for role in settings}


def comms_context(
    *,
    spec: PlanSpec,
    phase_key: str,
    comms: CommsSettings,
    tenant_name: str,
    recipient_name: str | None,
    roles: list[str],
    effective_from: datetime | None,
    page_url: str,
) -> dict[str, Any]:
    phase = spec.phase(phase_key)
    if phase is None:
        raise CommsRenderError(f"the plan has no phase {phase_key!r}")
    if comms.helpdesk is None:
        raise CommsRenderError(
            "the tenant has no helpdesk contact: set comms.helpdesk before sending comms"
        )
    effective = effective_settings(spec, phase_key)
    lines = []
    for role_id in roles or [str(r) for r in spec.role_ids()]:
        role_settings, approval = effective[role_id]
        lines.append(
            RoleLine(
                name=role_name(role_id),
                max_duration=_hours(role_settings.activation_max_duration),
                justification=bool(role_settings.require_justification),
                ticket=bool(role_settings.require_ticket),
                mfa=bool(role_settings.require_mfa),
                approval=approval,
            )
        )
    return {
        "tenant_name": tenant_name,
        "recipient_name": recipient_name or "there",
        "phase_title": phase.title,
        "roles": lines,
        "effective_from": effective_from.strftime("%A %d %B %Y, %H:%M UTC")
        if effective_from
        else "now",
        "activation_url": comms.activation_url,
        "helpdesk": comms.helpdesk,
        "page_url": page_url,
    }


class CommsRenderer:
    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self.env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"), default_for_string=True
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, template: str, subject: str, context: dict[str, Any]) -> RenderedComms:
        try:
            html = self.env.get_template(f"comms/{template}.html.j2").render(**context)
            text = self.env.get_template(f"comms/{template}.txt.j2").render(**context)
        except TemplateNotFound as exc:
            raise CommsRenderError(
                f"no comms template {template!r} ({exc.name} is missing)"
            ) from None
        except UndefinedError as exc:
            raise CommsRenderError(
                f"the comms template {template!r} needs a value that is missing: {exc.message}"
            ) from None
        return RenderedComms(subject=subject, html=html, text=text)
