"""The one-page comms: what changes, what to do when activating, who to call if it breaks.

Rendered from the package's Jinja templates under ``templates/comms/`` with autoescaping on and
strict undefined values, so a missing value fails the render instead of sending a broken mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
    select_autoescape,
)

from app.domain.plan import (
    ApplyRoleSettingsStep,
    ApprovalRule,
    PlanSpec,
    RequireApprovalStep,
    RoleSettings,
)
from app.domain.roles import role_name
from app.domain.tenant import CommsSettings

# How the mail names the people a binding stands for; other bindings read as their name.
BINDING_LABELS = {
    "security_team": "the security team",
    "managers": "the managers",
    "it_platform_team": "the IT/platform team",
    "helpdesk": "the helpdesk",
    "role_owners": "the role's owner",
}


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
    approvers: str | None = None
    """Who approves an activation, as the mail says it (``the security team``)."""


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


def approvers_text(rule: ApprovalRule) -> str:
    """Who approves, by binding: ``the security team``; explicit object ids stay unnamed."""
    names = []
    for ref in rule.approvers:
        if ref.binding is not None:
            names.append(BINDING_LABELS.get(ref.binding, "the " + ref.binding.replace("_", " ")))
        elif ref.group is not None:
            names.append("a named group of approvers")
        else:
            names.append("a named approver")
    return " or ".join(dict.fromkeys(names))


def effective_settings(
    spec: PlanSpec, phase_key: str
) -> dict[str, tuple[RoleSettings, ApprovalRule | None]]:
    """Each target role's activation settings and approval rule once ``phase_key`` has run."""
    settings = {str(r.id): r.settings for r in spec.roles}
    approval: dict[str, ApprovalRule | None] = {str(r.id): None for r in spec.roles}
    for phase in spec.phases:
        for step in phase.steps:
            if isinstance(step, ApplyRoleSettingsStep):
                for role_id in spec.role_ids(step.roles):
                    settings[str(role_id)] = settings[str(role_id)].merged(step.settings)
            elif isinstance(step, RequireApprovalStep):
                for rule in step.rules:
                    for role_id in rule.roles:
                        approval[str(role_id)] = rule
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
    personal: bool = True,
) -> dict[str, Any]:
    """The template's values: ``roles`` are the recipient's (``personal``), or the phase's.

    A personal mail lists what that person held and now activates, each role with the settings
    in effect once the phase has run; the public page (``personal=False``) lists them all.
    """
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
        role_settings, rule = effective[role_id]
        lines.append(
            RoleLine(
                name=role_name(role_id),
                max_duration=_hours(role_settings.activation_max_duration),
                justification=bool(role_settings.require_justification),
                ticket=bool(role_settings.require_ticket),
                mfa=bool(role_settings.require_mfa),
                approval=rule is not None,
                approvers=approvers_text(rule) if rule is not None else None,
            )
        )
    return {
        "tenant_name": tenant_name,
        "recipient_name": recipient_name or "there",
        "personal": personal,
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
    def __init__(self, loader: BaseLoader | None = None) -> None:
        self.env = Environment(
            loader=loader or PackageLoader("app", "templates"),
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
