"""Building simulated tenants: generated from a seed, loaded from a file, or from an inventory.

``generate_tenant`` lays out what the rollout plan binds to (DESIGN.md): admins with permanent
Active assignments made outside PIM over the target and low-impact roles, an IT/platform team,
a security team that holds no Global Administrator (they approve GA), managers holding no target
role, a role owner per target role, two break-glass Global Administrators, a helpdesk user, a
sender mailbox, service principals and a role-assignable group holding target roles. Most
members and some admins are synced from on-premises (``onPremisesSyncEnabled``).
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from app.simulator import catalog, lifecycle
from app.simulator.builders import (
    DEFAULT_ANCHOR,
    add_outside_pim_assignment,
    new_state,
)
from app.simulator.catalog import (
    APPLICATION_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    HELPDESK_ADMINISTRATOR,
    HIGH_IMPACT_ROLES,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    SECURITY_ADMINISTRATOR,
    SECURITY_READER,
)
from app.simulator.inventory import tenant_from_inventory
from app.simulator.snapshot import state_from_dict, state_to_dict
from app.simulator.state import Group, Schedule, ServicePrincipal, SimState, User

FIRST_NAMES = [
    "Adele",
    "Alex",
    "Allan",
    "Amara",
    "Anna",
    "Ben",
    "Bianca",
    "Carlos",
    "Chen",
    "Chloe",
    "Dana",
    "Daniel",
    "Diego",
    "Elena",
    "Emma",
    "Ethan",
    "Fatima",
    "Felix",
    "Grace",
    "Hannah",
    "Hiro",
    "Isabel",
    "Ivan",
    "Jack",
    "Jana",
    "Joni",
    "Jordan",
    "Julia",
    "Kai",
    "Karim",
    "Laura",
    "Lee",
    "Lena",
    "Lidia",
    "Liam",
    "Lucas",
    "Lynne",
    "Maria",
    "Mateo",
    "Megan",
    "Mia",
    "Miriam",
    "Nadia",
    "Nestor",
    "Noah",
    "Olivia",
    "Omar",
    "Patti",
    "Pradeep",
    "Priya",
    "Rafael",
    "Rosa",
    "Sam",
    "Sara",
    "Sofia",
    "Tariq",
    "Theo",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
]
LAST_NAMES = [
    "Adams",
    "Ahmed",
    "Alvarez",
    "Anderson",
    "Bauer",
    "Becker",
    "Brown",
    "Campbell",
    "Chen",
    "Clark",
    "Cruz",
    "Davis",
    "Diaz",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Gomez",
    "Gonzalez",
    "Green",
    "Hall",
    "Harris",
    "Hernandez",
    "Hill",
    "Holt",
    "Ito",
    "Jansen",
    "Johnson",
    "Jones",
    "Kim",
    "Klein",
    "Kowalski",
    "Lee",
    "Lewis",
    "Lopez",
    "Martin",
    "Martinez",
    "Miller",
    "Moore",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Patel",
    "Perez",
    "Petrov",
    "Rossi",
    "Sanchez",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Suzuki",
    "Taylor",
    "Thomas",
    "Vance",
    "Walker",
    "Weber",
    "White",
    "Wilson",
    "Young",
    "Zhang",
]
DEPARTMENTS = ("Finance", "Sales", "Marketing", "Operations", "HR", "Legal", "Engineering")
ADMIN_DEPARTMENTS = ("IT", "IT Operations", "Security", "Cloud Platform")
GUEST_DOMAINS = ("fabrikam.com", "northwindtraders.com", "adatum.com")
# Share of admins holding each role first; the rest follow realistic tenant spreads.
ROLE_WEIGHTS: dict[str, float] = {
    GLOBAL_ADMINISTRATOR: 8,
    catalog.USER_ADMINISTRATOR: 12,
    HELPDESK_ADMINISTRATOR: 12,
    catalog.EXCHANGE_ADMINISTRATOR: 8,
    catalog.SHAREPOINT_ADMINISTRATOR: 6,
    SECURITY_ADMINISTRATOR: 6,
    APPLICATION_ADMINISTRATOR: 6,
    CLOUD_APPLICATION_ADMINISTRATOR: 5,
    catalog.AUTHENTICATION_ADMINISTRATOR: 5,
    catalog.PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: 3,
    catalog.CONDITIONAL_ACCESS_ADMINISTRATOR: 4,
    catalog.INTUNE_ADMINISTRATOR: 5,
    PRIVILEGED_ROLE_ADMINISTRATOR: 3,
    catalog.REPORTS_READER: 6,
    catalog.GLOBAL_READER: 6,
    catalog.MESSAGE_CENTER_READER: 2,
    catalog.USAGE_SUMMARY_REPORTS_READER: 1,
    SECURITY_READER: 2,
}


class _Builder:
    def __init__(self, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(f"tenant:{seed}")
        self.anchor = anchor
        self.used_upns: set[str] = set()

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def upn(self, first: str, last: str, domain: str) -> str:
        base = f"{first}.{last}".lower()
        candidate, n = base, 1
        while f"{candidate}@{domain}" in self.used_upns:
            n += 1
            candidate = f"{base}{n}"
        self.used_upns.add(f"{candidate}@{domain}")
        return f"{candidate}@{domain}"

    def past(self, low_days: int, high_days: int) -> datetime:
        seconds = self.rng.randint(low_days * 86400, high_days * 86400)
        return self.anchor - timedelta(seconds=seconds)


def _user(b: _Builder, state: SimState, first: str, last: str, **extra: Any) -> User:
    upn = extra.pop("upn", None) or b.upn(first, last, state.domain)
    guest = extra.get("user_type") == "Guest"
    return state.add_user(
        User(
            id=b.guid(),
            display_name=f"{first} {last}",
            user_principal_name=upn,
            given_name=first,
            surname=last,
            mail=None if guest else upn,
            has_mailbox=not guest,
            **extra,
        )
    )


def generate_tenant(
    *,
    users: int = 200,
    admins: int = 30,
    seed: int = 1,
    p2: bool = True,
    anchor: datetime | None = None,
    eligibilities: int = 0,
    groups: int = 0,
) -> SimState:
    """A deterministic tenant: same arguments, same ids and assignments.

    ``eligibilities`` and ``groups`` size a large tenant: that many PIM eligibility schedules
    over the admins (permanent, made through PIM), and that many extra groups (one in ten
    role-assignable, holding a role) with a few members each. They are drawn from a generator
    of their own, so the rest of the tenant is the same whatever they are.
    """
    if admins < 4:
        raise ValueError("admins must be at least 4 (GA, PRA, security and platform holders)")
    if users < admins + 8:
        raise ValueError(
            f"users ({users}) must be at least admins + 8: two break-glass accounts, a helpdesk "
            "user, a sender mailbox and at least three managers and a role owner besides admins"
        )
    b = _Builder(seed, anchor or DEFAULT_ANCHOR)
    state = new_state(
        tenant_id=b.guid(),
        tenant_name="Contoso",
        domain="contoso.com",
        created_at=b.past(700, 900),
        seed=seed,
        p2=p2,
    )
    names = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    b.rng.shuffle(names)
    name_iter = iter(names * (users // len(names) + 1))

    break_glass = [
        _user(b, state, "Break Glass", str(n), upn=f"breakglass{n}@{state.domain}", department="IT")
        for n in (1, 2)
    ]
    sender = _user(
        b, state, "PIM Rollout", "Notifications", upn=f"pim-rollout@{state.domain}", department="IT"
    )
    helpdesk = _user(
        b, state, "IT", "Service Desk", upn=f"servicedesk@{state.domain}", department="IT"
    )
    admin_users = []
    for _ in range(admins):
        first, last = next(name_iter)
        admin_users.append(
            _user(
                b,
                state,
                first,
                last,
                job_title="Administrator",
                department=b.rng.choice(ADMIN_DEPARTMENTS),
            )
        )
    regular: list[User] = []
    for index in range(users - admins - 4):
        first, last = next(name_iter)
        if index % 20 == 19:  # about 5 % guests
            domain = b.rng.choice(GUEST_DOMAINS)
            home = f"{first}.{last}".lower() + f"_{domain}"
            upn = f"{home}#EXT#@{state.domain.split('.')[0]}.onmicrosoft.com"
            _user(b, state, first, last, upn=upn, user_type="Guest")
            continue
        regular.append(_user(b, state, first, last, department=b.rng.choice(DEPARTMENTS)))

    _mark_synced(seed, admin_users, regular)
    holdings = _assign_roles(b, admin_users)
    when = {user.id: b.past(30, 900) for user in admin_users}
    for user in break_glass:
        add_outside_pim_assignment(state, user.id, GLOBAL_ADMINISTRATOR, at=b.past(600, 900))
    for user in admin_users:
        for role_id in holdings[user.id]:
            add_outside_pim_assignment(state, user.id, role_id, at=when[user.id])

    # Service principals with a standing target role (they cannot become eligible).
    for n in range(1 if admins < 10 else 2):
        sp = state.add_service_principal(
            ServicePrincipal(
                id=b.guid(), app_id=b.guid(), display_name=f"Provisioning Connector {n + 1}"
            )
        )
        role_id = APPLICATION_ADMINISTRATOR if n == 0 else CLOUD_APPLICATION_ADMINISTRATOR
        add_outside_pim_assignment(state, sp.id, role_id, at=b.past(100, 500))

    # A role-assignable group holding a target role, with a couple of members.
    tier1 = state.add_group(
        Group(
            id=b.guid(),
            display_name="Tier 1 Helpdesk Admins",
            description="Role-assignable group holding Helpdesk Administrator",
            mail_nickname="tier1-helpdesk-admins",
            is_assignable_to_role=True,
            member_ids=[u.id for u in b.rng.sample(regular, 2)],
        )
    )
    add_outside_pim_assignment(state, tier1.id, HELPDESK_ADMINISTRATOR, at=b.past(100, 400))

    platform_size = max(2, round(admins * 0.15))
    platform_pool = [u for u in admin_users if set(holdings[u.id]) & set(HIGH_IMPACT_ROLES)]
    platform = state.add_group(
        Group(
            id=b.guid(),
            display_name="IT Platform Team",
            description="Pilot cohort: the IT/platform team",
            mail_nickname="it-platform-team",
            member_ids=[
                u.id for u in b.rng.sample(platform_pool, min(platform_size, len(platform_pool)))
            ],
        )
    )
    not_ga = [u for u in admin_users if GLOBAL_ADMINISTRATOR not in holdings[u.id]]
    security_pool = [
        u for u in not_ga if {SECURITY_ADMINISTRATOR, SECURITY_READER} & set(holdings[u.id])
    ] or not_ga
    security_members = b.rng.sample(security_pool, min(len(security_pool), 4))
    extra_pool = [u for u in not_ga + regular if u not in security_members]
    while len(security_members) < 3:
        security_members.append(extra_pool.pop(b.rng.randrange(len(extra_pool))))
    security = state.add_group(
        Group(
            id=b.guid(),
            display_name="Security Operations",
            description="Security team: approvers of Global Administrator activation",
            mail_nickname="security-operations",
            member_ids=[u.id for u in security_members],
        )
    )
    manager_pool = [u for u in regular if u.id not in tier1.member_ids]
    managers = state.add_group(
        Group(
            id=b.guid(),
            display_name="People Managers",
            description="Managers who approve activations for their teams",
            mail_nickname="people-managers",
            member_ids=[u.id for u in b.rng.sample(manager_pool, min(5, len(manager_pool)))],
        )
    )
    # Role owners review their role: nobody who holds it, even through the role-assignable group.
    owner_pool = [
        u for u in regular if u.id not in managers.member_ids and u.id not in tier1.member_ids
    ]
    owners = {role_id: b.rng.choice(owner_pool).id for role_id in HIGH_IMPACT_ROLES}
    state.profile.break_glass_ids = [u.id for u in break_glass]
    state.profile.bindings = {
        "it_platform_team": {"kind": "group", "id": platform.id},
        "security_team": {"kind": "group", "id": security.id},
        "managers": {"kind": "group", "id": managers.id},
        "role_owners": {
            "kind": "role_owners",
            "owners": owners,
            "fallback": b.rng.choice(owner_pool).id,
        },
        "helpdesk": {"kind": "users", "ids": [helpdesk.id]},
        # The security team's shared mailbox: PIM alerts on assignment and activation go here.
        "security_team_mailbox": {
            "kind": "mailbox",
            "addresses": [f"security-alerts@{state.domain}"],
        },
    }
    state.profile.comms = {
        "sender": sender.id,
        "helpdesk": {
            "name": "IT Service Desk",
            "email": helpdesk.user_principal_name,
            "phone": "+1 425 555 0100",
        },
    }
    if eligibilities or groups:
        _add_bulk(_Builder(seed, b.anchor), state, admin_users + regular, eligibilities, groups)
    state.rebuild_skus()
    return state


SYNCED_ADMIN_SHARE = 0.2
SYNCED_MEMBER_SHARE = 0.6


def _mark_synced(seed: int, admin_users: list[User], regular: list[User]) -> None:
    """A hybrid tenant: most members and some admins are synced from on-premises AD (CISA
    MS.AAD.7.3 wants privileged accounts cloud-only). Break-glass accounts, the service
    mailboxes and guests stay cloud-only. A generator of its own keeps every other id and
    assignment what it was before this was added."""
    rng = random.Random(f"tenant-sync:{seed}")
    for user in rng.sample(admin_users, max(1, round(len(admin_users) * SYNCED_ADMIN_SHARE))):
        user.on_premises_sync_enabled = True
    for user in regular:
        if rng.random() < SYNCED_MEMBER_SHARE:
            user.on_premises_sync_enabled = True


def _add_bulk(
    b: _Builder, state: SimState, people: list[User], eligibilities: int, groups: int
) -> None:
    """The bulk of a large tenant: PIM eligibilities and groups (see :func:`generate_tenant`)."""
    b.rng = random.Random(f"tenant-bulk:{b.rng.random()}")
    roles = list(ROLE_WEIGHTS)
    weights = [ROLE_WEIGHTS[r] for r in roles]
    made = 0
    for _ in range(eligibilities * 3):
        if made == eligibilities:
            break
        principal = b.rng.choice(people)
        role_id = b.rng.choices(roles, weights)[0]
        if state.eligibles.find(principal.id, role_id, "/") is not None:
            continue
        at = b.past(30, 600)
        lifecycle.store_schedule(
            state,
            Schedule(
                id=b.guid(),
                kind="eligible",
                principal_id=principal.id,
                role_definition_id=role_id,
                directory_scope_id="/",
                assigned_at=at,
                last_change_at=at,
                start=at,
                created_using=b.guid(),
                created_at=at,
                modified_at=at,
            ),
            now=at,
            cause="seed",
        )
        made += 1
    for n in range(groups):
        assignable = n % 10 == 0
        group = state.add_group(
            Group(
                id=b.guid(),
                display_name=f"Team {n + 1:04d}",
                description="Generated team",
                mail_nickname=f"team-{n + 1:04d}",
                is_assignable_to_role=assignable,
                member_ids=[u.id for u in b.rng.sample(people, min(len(people), 8))],
            )
        )
        if assignable:
            role_id = b.rng.choices(roles, weights)[0]
            add_outside_pim_assignment(state, group.id, role_id, at=b.past(30, 600))


def _assign_roles(b: _Builder, admin_users: list[User]) -> dict[str, list[str]]:
    roles = list(ROLE_WEIGHTS)
    weights = [ROLE_WEIGHTS[r] for r in roles]
    holdings: dict[str, list[str]] = {}
    for user in admin_users:
        held = [b.rng.choices(roles, weights)[0]]
        for chance in (0.3, 0.1):
            if b.rng.random() < chance:
                extra = b.rng.choices(roles, weights)[0]
                if extra not in held:
                    held.append(extra)
        holdings[user.id] = held
    # Every target role is held by someone; GA by at least two admins besides break-glass.
    counts = Counter(role for held in holdings.values() for role in held)
    wanted = {role: 1 for role in HIGH_IMPACT_ROLES if len(admin_users) >= len(HIGH_IMPACT_ROLES)}
    wanted[GLOBAL_ADMINISTRATOR] = 2
    wanted[PRIVILEGED_ROLE_ADMINISTRATOR] = 1
    wanted.setdefault(SECURITY_ADMINISTRATOR, 1)
    for role, minimum in wanted.items():
        while counts[role] < minimum:
            user = b.rng.choice(admin_users)
            if role not in holdings[user.id]:
                holdings[user.id].append(role)
                counts[role] += 1
    return holdings


# --- files ---------------------------------------------------------------------------------------
def save_tenant(state: SimState, path: Path) -> None:
    """Write the whole state (ids preserved) as JSON, or YAML for .yaml/.yml."""
    data = state_to_dict(state)
    if path.suffix.lower() in {".yaml", ".yml"}:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    else:
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def load_tenant(path: Path) -> SimState:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a tenant file holds one mapping")
    return state_from_dict(data)


__all__ = [
    "add_outside_pim_assignment",
    "generate_tenant",
    "load_tenant",
    "save_tenant",
    "tenant_from_inventory",
]
