"""Plan validation: every problem with a field path, so the CLI prints ``FILE: path: reason``.

Pydantic checks shape and types; the checks here add what a schema can't say: role ids that
are not Entra built-in roles, duplicate phase keys, schedules that go backwards, activation
limits, Global Administrator approval with fewer than two approvers, and circular trust
(invariant 3: an approver group that is also converted for the role it approves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from app.domain.plan import (
    NOTIFICATION_RULE_IDS,
    ApplyRoleSettingsStep,
    ConvertCohortStep,
    CreateAccessReviewsStep,
    PlanSpec,
    PrincipalRef,
    RequireApprovalStep,
    RoleSettings,
    SendCommsStep,
    SetNotificationRulesStep,
)
from app.domain.roles import GLOBAL_ADMINISTRATOR, ROLES_BY_ID

MIN_SCHEDULE_SPAN = timedelta(minutes=5)
MIN_ACTIVATION = timedelta(minutes=30)
MAX_ACTIVATION = timedelta(hours=24)
MIN_GA_APPROVERS = 2
_STEP_KINDS = {
    "apply_role_settings",
    "convert_cohort",
    "send_comms",
    "require_approval",
    "create_access_reviews",
    "set_notification_rules",
}
_AUTH_KINDS = {"client_secret", "certificate", "managed_identity", "default", "none"}
_BINDING_KINDS = {"group", "users", "role_owners"}


@dataclass(frozen=True)
class PlanProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PlanInvalidError(Exception):
    def __init__(self, problems: list[PlanProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def format_location(loc: Iterable[int | str]) -> str:
    """A field path as the body spells it: ``phases[0].steps[1].roles``, ``auth.client_secret``.

    Pydantic puts the tag of a discriminated union in the location (``auth.certificate.
    certificate_pem``); the body has no such level, so a reader doesn't need it.
    """
    path = ""
    parts = list(loc)
    for index, part in enumerate(parts):
        before = parts[index - 1] if index > 0 else None
        if isinstance(part, int):
            path += f"[{part}]"
        elif (
            (part in _STEP_KINDS and isinstance(before, int))
            or (part in _AUTH_KINDS and before == "auth")
            or (part in _BINDING_KINDS and index > 1 and parts[index - 2] == "bindings")
        ):
            continue
        else:
            path += ("." if path else "") + part
    return path or "(plan)"


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[PlanProblem]:
    problems = []
    for error in exc.errors():
        path = format_location(error["loc"])
        if prefix:
            path = prefix if path == "(plan)" else f"{prefix}.{path}"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(PlanProblem(path, message))
    return problems


def parse_plan(data: Any) -> PlanSpec:
    """Parse and check a plan; raise ``PlanInvalidError`` listing every problem found."""
    if not isinstance(data, Mapping):
        raise PlanInvalidError([PlanProblem("(plan)", "a plan must be a mapping of fields")])
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise PlanInvalidError(problems_from_validation_error(exc)) from None
    problems = check_plan(spec)
    if problems:
        raise PlanInvalidError(problems)
    return spec


def check_plan(spec: PlanSpec) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    problems += _check_roles(spec)
    problems += _check_phases(spec)
    problems += _check_steps(spec)
    problems += _check_circular_trust(spec)
    return problems


def _known(role_id: UUID) -> bool:
    return str(role_id) in ROLES_BY_ID


def _check_settings(settings: RoleSettings | None, path: str) -> list[PlanProblem]:
    if settings is None:
        return []
    problems: list[PlanProblem] = []
    duration = settings.activation_max_duration
    if duration is not None and duration > MAX_ACTIVATION:
        problems.append(
            PlanProblem(f"{path}.activation_max_duration", "must be at most 24 hours (PT24H)")
        )
    elif duration is not None and duration < MIN_ACTIVATION:
        problems.append(
            PlanProblem(f"{path}.activation_max_duration", "must be at least 30 minutes (PT30M)")
        )
    eligible = settings.eligible_expiration
    if eligible is not None and eligible < MIN_SCHEDULE_SPAN:
        problems.append(
            PlanProblem(
                f"{path}.eligible_expiration",
                "must be at least 5 minutes (PT5M): Graph refuses a schedule whose start and "
                "end are closer",
            )
        )
    return problems


def _check_roles(spec: PlanSpec) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    seen: set[UUID] = set()
    for index, role in enumerate(spec.roles):
        path = f"roles[{index}]"
        if not _known(role.id):
            problems.append(
                PlanProblem(
                    f"{path}.id",
                    f"unknown role id {role.id} (not an Entra built-in role template id)",
                )
            )
        if role.id in seen:
            problems.append(PlanProblem(f"{path}.id", f"role {role.id} is listed twice"))
        seen.add(role.id)
        problems += _check_settings(role.settings, f"{path}.settings")
    return problems


def _check_phases(spec: PlanSpec) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    seen: dict[str, int] = {}
    for index, phase in enumerate(spec.phases):
        if phase.key in seen:
            problems.append(
                PlanProblem(
                    f"phases[{index}].key",
                    f"duplicate phase key {phase.key!r} (also phases[{seen[phase.key]}])",
                )
            )
        seen.setdefault(phase.key, index)
        if index > 0:
            previous = spec.phases[index - 1]
            if phase.starts_after < previous.starts_after:
                problems.append(
                    PlanProblem(
                        f"phases[{index}].starts_after",
                        f"schedule goes backwards: {_iso(phase.starts_after)} is earlier than "
                        f"phases[{index - 1}] ({_iso(previous.starts_after)})",
                    )
                )
        if phase.starts_after < timedelta(0):
            problems.append(PlanProblem(f"phases[{index}].starts_after", "must not be negative"))
    return problems


def _check_role_list(spec: PlanSpec, roles: list[UUID] | None, path: str) -> list[PlanProblem]:
    problems = []
    targets = {r.id for r in spec.roles}
    for index, role_id in enumerate(roles or []):
        if not _known(role_id):
            problems.append(PlanProblem(f"{path}[{index}]", f"unknown role id {role_id}"))
        elif role_id not in targets:
            problems.append(
                PlanProblem(
                    f"{path}[{index}]", f"role {role_id} is not one of the plan's target roles"
                )
            )
    return problems


def _check_steps(spec: PlanSpec) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    for p_index, phase in enumerate(spec.phases):
        seen_convert = False
        for s_index, step in enumerate(phase.steps):
            path = f"phases[{p_index}].steps[{s_index}]"
            if isinstance(step, ApplyRoleSettingsStep):
                problems += _check_role_list(spec, step.roles, f"{path}.roles")
                problems += _check_settings(step.settings, f"{path}.settings")
                if seen_convert:
                    problems.append(
                        PlanProblem(
                            path,
                            "apply_role_settings must come before convert_cohort: Graph validates "
                            "new eligible assignments against the role's settings",
                        )
                    )
            elif isinstance(step, ConvertCohortStep):
                seen_convert = True
                problems += _check_role_list(spec, step.roles, f"{path}.roles")
            elif isinstance(step, SendCommsStep):
                if not seen_convert:
                    problems.append(
                        PlanProblem(
                            path,
                            "send_comms mails the phase's converted cohort: "
                            "put a convert_cohort step before it",
                        )
                    )
            elif isinstance(step, RequireApprovalStep):
                for r_index, rule in enumerate(step.rules):
                    problems += _check_approval(
                        spec,
                        rule.roles,
                        rule.approvers,
                        rule.min_approvers,
                        f"{path}.rules[{r_index}]",
                    )
            elif isinstance(step, CreateAccessReviewsStep):
                problems += _check_role_list(spec, step.roles, f"{path}.roles")
            elif isinstance(step, SetNotificationRulesStep):
                problems += _check_role_list(spec, step.roles, f"{path}.roles")
                problems += _check_notifications(step, path)
    return problems


def _check_notifications(step: SetNotificationRulesStep, path: str) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(step.rules):
        where = f"{path}.rules[{index}]"
        if rule.id not in NOTIFICATION_RULE_IDS:
            problems.append(
                PlanProblem(
                    f"{where}.id",
                    f"unknown notification rule {rule.id!r}; one of "
                    + ", ".join(NOTIFICATION_RULE_IDS),
                )
            )
        elif rule.id in seen:
            problems.append(
                PlanProblem(
                    f"{where}.id", f"{rule.id} is listed twice (also rules[{seen[rule.id]}])"
                )
            )
        seen.setdefault(rule.id, index)
        if rule.level == "None":
            problems.append(
                PlanProblem(
                    f"{where}.level",
                    "level None sends no mail, so the recipients would get nothing: use All or "
                    "Critical",
                )
            )
    addresses = [ref.address.casefold() for ref in step.recipients if ref.address]
    bindings = [ref.binding for ref in step.recipients if ref.binding]
    if len(set(addresses)) != len(addresses) or len(set(bindings)) != len(bindings):
        problems.append(PlanProblem(f"{path}.recipients", "a recipient is listed twice"))
    return problems


def _check_approval(
    spec: PlanSpec, roles: list[UUID], approvers: list[PrincipalRef], minimum: int, path: str
) -> list[PlanProblem]:
    problems = _check_role_list(spec, roles, f"{path}.roles")
    if any(str(role) == GLOBAL_ADMINISTRATOR for role in roles):
        if minimum < MIN_GA_APPROVERS:
            problems.append(
                PlanProblem(
                    f"{path}.min_approvers",
                    f"Global Administrator approval needs at least {MIN_GA_APPROVERS} approvers "
                    f"(got {minimum})",
                )
            )
        only_users = all(ref.user is not None for ref in approvers)
        distinct = {ref.user for ref in approvers}
        if only_users and len(distinct) < MIN_GA_APPROVERS:
            problems.append(
                PlanProblem(
                    f"{path}.approvers",
                    f"Global Administrator approval needs at least {MIN_GA_APPROVERS} distinct "
                    f"approvers (got {len(distinct)})",
                )
            )
    return problems


def _cohort_sources(spec: PlanSpec) -> dict[UUID, set[str]]:
    """Per target role, the bindings and principal ids whose members get converted for it."""
    sources: dict[UUID, set[str]] = {role.id: set() for role in spec.roles}
    for phase in spec.phases:
        for step in phase.steps:
            if not isinstance(step, ConvertCohortStep):
                continue
            for role_id in spec.role_ids(step.roles):
                if step.cohort.binding is not None:
                    sources[role_id].add(f"binding:{step.cohort.binding}")
                for principal in step.cohort.principals or []:
                    sources[role_id].add(f"id:{principal}")
    return sources


def _check_circular_trust(spec: PlanSpec) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    sources = _cohort_sources(spec)
    for p_index, phase in enumerate(spec.phases):
        for s_index, step in enumerate(phase.steps):
            if not isinstance(step, RequireApprovalStep):
                continue
            for r_index, rule in enumerate(step.rules):
                for a_index, ref in enumerate(rule.approvers):
                    token = (
                        f"binding:{ref.binding}" if ref.binding else f"id:{ref.user or ref.group}"
                    )
                    for role_id in rule.roles:
                        if token in sources.get(role_id, set()):
                            name = (
                                ROLES_BY_ID[str(role_id)].name if _known(role_id) else str(role_id)
                            )
                            problems.append(
                                PlanProblem(
                                    f"phases[{p_index}].steps[{s_index}].rules[{r_index}]"
                                    f".approvers[{a_index}]",
                                    f"circular trust: {token.split(':', 1)[1]} approves {name} "
                                    "but is also converted to eligible for it",
                                )
                            )
    return problems


def _iso(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time_part = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs else "")
    )
    if time_part:
        out += "T" + time_part
    return out if out != "P" else "PT0S"


def iso_duration(value: timedelta) -> str:
    return _iso(value)
