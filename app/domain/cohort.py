"""Which standing assignments a conversion step turns Eligible: pure selection over live data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class PrincipalType(StrEnum):
    user = "user"
    group = "group"
    service_principal = "servicePrincipal"
    unknown = "unknown"


MICROSOFT_ACCOUNT_REASON = (
    "signs in with a personal Microsoft account, which cannot satisfy MFA on activation: "
    "stays permanent Active"
)


@dataclass(frozen=True)
class Holding:
    """A permanent Active assignment seen live in the tenant."""

    principal_id: str
    principal_type: str
    role_definition_id: str
    directory_scope_id: str
    assignment_id: str
    principal_name: str | None = None
    principal_upn: str | None = None
    member_type: str = "Direct"
    created_outside_pim: bool = True
    microsoft_account: bool = False
    """Signs in with a personal Microsoft account, which cannot do MFA on activation."""


@dataclass(frozen=True)
class Selected:
    holding: Holding
    skip_reason: str | None = None


@dataclass(frozen=True)
class Excluded:
    holding: Holding
    reason: str


def select_conversions(
    holdings: Iterable[Holding],
    *,
    roles_in_order: Sequence[str],
    cohort: set[str] | None,
    break_glass: set[str],
) -> tuple[list[Selected], list[Excluded]]:
    """Items in plan role order; ``cohort`` None means every remaining holder.

    Break-glass accounts are excluded whatever the selector says. Service principals cannot be
    eligible for directory roles, and a personal Microsoft account would be locked out by MFA on
    activation, so both are selected as skipped (they stay permanent Active) and reported.
    """
    rank = {role: index for index, role in enumerate(roles_in_order)}
    selected: list[Selected] = []
    excluded: list[Excluded] = []
    seen: set[tuple[str, str, str]] = set()
    ordered = sorted(
        (h for h in holdings if h.role_definition_id in rank),
        key=lambda h: (
            rank[h.role_definition_id],
            (h.principal_name or "").lower(),
            h.principal_id,
        ),
    )
    for holding in ordered:
        key = (holding.principal_id, holding.role_definition_id, holding.directory_scope_id)
        if key in seen or holding.member_type != "Direct":
            continue
        seen.add(key)
        if cohort is not None and holding.principal_id not in cohort:
            continue
        if holding.principal_id in break_glass:
            excluded.append(Excluded(holding, "break-glass account: stays permanent Active"))
            continue
        if holding.principal_type == PrincipalType.service_principal:
            selected.append(
                Selected(holding, "service principals cannot be eligible for directory roles")
            )
            continue
        if holding.microsoft_account:
            selected.append(Selected(holding, MICROSOFT_ACCOUNT_REASON))
            continue
        selected.append(Selected(holding))
    return selected, excluded


@dataclass(frozen=True)
class ConversionStep:
    """One conversion step of a plan, as the replay sees it (its cohort already resolved)."""

    phase_key: str
    roles_in_order: Sequence[str]
    cohort: set[str] | None


def replay_conversions(
    holdings: Iterable[Holding],
    steps: Sequence[ConversionStep],
    *,
    break_glass: set[str],
    protected: frozenset[str],
) -> dict[str, list[Holding]]:
    """Per phase, the standing assignments its steps would turn Eligible, replayed in order.

    Later steps see the tenant as earlier ones leave it (a converted holder is no longer
    "remaining"). Skipped holders (service principals, personal Microsoft accounts) and the
    last active holder of a ``protected`` role (PIM refuses to remove it: it stays Active) are
    not converted, so they are not in the result.
    """
    active = {(h.principal_id, h.role_definition_id, h.directory_scope_id): h for h in holdings}
    converted: dict[str, list[Holding]] = {}
    for step in steps:
        selected, _ = select_conversions(
            list(active.values()),
            roles_in_order=step.roles_in_order,
            cohort=step.cohort,
            break_glass=break_glass,
        )
        done = converted.setdefault(step.phase_key, [])
        for choice in selected:
            if choice.skip_reason:
                continue
            h = choice.holding
            key = (h.principal_id, h.role_definition_id, h.directory_scope_id)
            if h.role_definition_id in protected and not any(
                k[1] == h.role_definition_id and k != key for k in active
            ):
                continue
            active.pop(key, None)
            done.append(h)
    return converted
