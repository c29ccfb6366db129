"""The simulated tenant's data: plain Python objects and indexes, no HTTP.

Lookups the product and the benchmarks hammer are indexed: schedules by
``(principal, role, scope)``, by principal and by role; users by UPN. Every object carries a
``seq`` (creation order) so lists come out in a stable order and paging can resume after the
last item seen even while the collection changes.
"""

from __future__ import annotations

import bisect
import heapq
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.simulator import catalog
from app.simulator.catalog import BUILT_IN_ROLES, RoleDefinition, SkuTemplate
from app.simulator.ids import IdFactory
from app.simulator.rules import default_rules

ScheduleKind = Literal["active", "eligible"]
RequestKind = Literal["assignment", "eligibility"]
ScheduleKey = tuple[str, str, str]  # (principal id, role definition id, directory scope id)

# Everything the product needs, per reference §1 (least-privileged application permissions).
# Listing schedule requests needs the ReadWrite schedule permission (observed 403 asking for
# RoleEligibilitySchedule.ReadWrite.Directory: microsoftgraph/microsoft-graph-docs#22292).
DEFAULT_GRANTED_PERMISSIONS: frozenset[str] = frozenset(
    {
        "RoleManagement.Read.Directory",
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleEligibilitySchedule.ReadWrite.Directory",
        "RoleManagementPolicy.ReadWrite.Directory",
        "AccessReview.ReadWrite.All",
        "Organization.Read.All",
        "Directory.Read.All",
        "Mail.Send",
        "Mail.ReadBasic.All",
        "AuditLog.Read.All",
    }
)


@dataclass
class User:
    id: str
    display_name: str
    user_principal_name: str
    given_name: str | None = None
    surname: str | None = None
    mail: str | None = None
    user_type: str = "Member"
    account_enabled: bool = True
    job_title: str | None = None
    department: str | None = None
    has_mailbox: bool = True
    identities: list[dict[str, str | None]] = field(default_factory=list)
    """Sign-in identities; empty means the default one Graph shows for this kind of user."""
    on_premises_sync_enabled: bool | None = None
    """``true`` while synced from an on-premises directory, ``false`` once no longer synced,
    ``null`` for a cloud-only account that never was (Graph's ``onPremisesSyncEnabled``)."""
    seq: int = 0


@dataclass
class Group:
    id: str
    display_name: str
    description: str | None = None
    mail_nickname: str = ""
    is_assignable_to_role: bool = False
    security_enabled: bool = True
    mail_enabled: bool = False
    member_ids: list[str] = field(default_factory=list)
    seq: int = 0


@dataclass
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    service_principal_type: str = "Application"
    account_enabled: bool = True
    seq: int = 0


Principal = User | Group | ServicePrincipal


@dataclass
class Schedule:
    """One active or eligible assignment of a role to a principal (a PIM schedule).

    ``start is None`` marks an assignment made outside PIM: always effective, instance
    ``startDateTime`` null, schedule id == roleAssignment id (reference §4.2).
    """

    id: str
    kind: ScheduleKind
    principal_id: str
    role_definition_id: str
    directory_scope_id: str
    assigned_at: datetime
    last_change_at: datetime
    start: datetime | None = None
    end: datetime | None = None
    assignment_type: str = "Assigned"  # "Activated" for a PIM activation
    created_using: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    activated_using: str | None = None  # eligibility schedule id behind an activation
    version: int = 0  # bumped on every update; stale queued start/end events are ignored
    seq: int = 0

    @property
    def key(self) -> ScheduleKey:
        return (self.principal_id, self.role_definition_id, self.directory_scope_id)

    @property
    def outside_pim(self) -> bool:
        return self.created_using is None

    def effective(self, now: datetime) -> bool:
        started = self.start is None or self.start <= now
        return started and (self.end is None or now < self.end)


@dataclass
class ScheduleRequest:
    id: str
    kind: RequestKind
    action: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str | None
    app_scope_id: str | None
    status: str
    created_at: datetime
    created_by: dict[str, Any]
    justification: str | None = None
    schedule_info: dict[str, Any] | None = None
    ticket_number: str | None = None
    ticket_system: str | None = None
    is_validation_only: bool = False
    target_schedule_id: str | None = None
    completed_at: datetime | None = None
    approval_id: str | None = None
    custom_data: str | None = None
    # What an approved activation will get (kept while PendingApproval).
    pending_start: datetime | None = None
    pending_end: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    seq: int = 0


@dataclass
class Policy:
    id: str  # DirectoryRole_{tenantId}_{guid}
    role_definition_id: str
    rules: dict[str, dict[str, Any]]  # rule id -> rule as Graph returns it, in Graph's order
    last_modified_at: datetime | None = None
    last_modified_by: dict[str, Any] | None = None
    seq: int = 0


@dataclass
class ReviewDefinition:
    id: str
    body: dict[str, Any]  # the accessReviewScheduleDefinition as Graph returns it
    instances: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0


@dataclass
class Sku:
    template: SkuTemplate
    enabled_units: int
    consumed_units: int
    account_id: str
    subscription_id: str
    capability_status: str = "Enabled"


@dataclass
class OutboxMessage:
    seq: int
    at: datetime
    sender_id: str
    sender_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    content_type: str
    body: str
    save_to_sent_items: bool
    attachment_names: list[str] = field(default_factory=list)
    extended_properties: dict[str, str] = field(default_factory=dict)
    id: str = ""


@dataclass
class AuditRecord:
    id: str
    at: datetime
    body: dict[str, Any]
    seq: int = 0


@dataclass
class TimelineEntry:
    seq: int
    at: datetime
    principal_id: str
    role_definition_id: str
    directory_scope_id: str
    kind: ScheduleKind
    change: Literal["added", "removed"]
    cause: str
    schedule_id: str


@dataclass
class Profile:
    """What ``GET /_sim/profile`` reports: who is break-glass, who fills each binding."""

    break_glass_ids: list[str] = field(default_factory=list)
    bindings: dict[str, Any] = field(default_factory=dict)
    comms: dict[str, Any] = field(default_factory=dict)


@dataclass(order=True)
class PendingEvent:
    """A schedule start or end that the state applies lazily once the clock passes it."""

    at: datetime
    seq: int
    event: Literal["start", "end"] = field(compare=False)
    kind: ScheduleKind = field(compare=False)
    schedule_id: str = field(compare=False)
    version: int = field(compare=False)


class ScheduleStore:
    """Schedules of one kind with the indexes the routes and the engine need."""

    def __init__(self, kind: ScheduleKind) -> None:
        self.kind: ScheduleKind = kind
        self.by_id: dict[str, Schedule] = {}
        self.by_key: dict[ScheduleKey, str] = {}
        self.by_principal: dict[str, set[str]] = {}
        self.by_role: dict[str, set[str]] = {}
        self._ordered: dict[str | None, list[Schedule]] = {}
        """Sorted by ``seq`` per role (``None``: all), built on demand, dropped on a change."""

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self.by_id.values())

    def add(self, schedule: Schedule) -> None:
        if schedule.key in self.by_key:
            raise ValueError(f"{self.kind} assignment {schedule.key} already exists")
        self.by_id[schedule.id] = schedule
        self.by_key[schedule.key] = schedule.id
        self.by_principal.setdefault(schedule.principal_id, set()).add(schedule.id)
        self.by_role.setdefault(schedule.role_definition_id, set()).add(schedule.id)
        self._changed(schedule.role_definition_id)

    def remove(self, schedule_id: str) -> Schedule:
        schedule = self.by_id.pop(schedule_id)
        del self.by_key[schedule.key]
        self.by_principal[schedule.principal_id].discard(schedule_id)
        self.by_role[schedule.role_definition_id].discard(schedule_id)
        self._changed(schedule.role_definition_id)
        return schedule

    def _changed(self, role_id: str) -> None:
        self._ordered.pop(role_id, None)
        self._ordered.pop(None, None)

    def ordered(self, role_id: str | None = None) -> list[Schedule]:
        """The role's schedules (every schedule for ``None``) by ``seq``; don't modify it."""
        found = self._ordered.get(role_id)
        if found is None:
            ids = self.by_id if role_id is None else self.by_role.get(role_id, ())
            found = self._ordered[role_id] = self._sorted(ids)
        return found

    def get(self, schedule_id: str) -> Schedule | None:
        return self.by_id.get(schedule_id)

    def find(self, principal_id: str, role_id: str, scope: str) -> Schedule | None:
        schedule_id = self.by_key.get((principal_id, role_id, scope))
        return self.by_id[schedule_id] if schedule_id else None

    def for_principal(self, principal_id: str) -> list[Schedule]:
        return self._sorted(self.by_principal.get(principal_id, ()))

    def for_role(self, role_id: str) -> list[Schedule]:
        return self._sorted(self.by_role.get(role_id, ()))

    def _sorted(self, ids: Iterable[str]) -> list[Schedule]:
        return sorted((self.by_id[i] for i in ids), key=lambda s: s.seq)


class SimState:
    """Everything the simulated tenant knows. Mutated only by the engine modules."""

    def __init__(
        self,
        *,
        tenant_id: str,
        tenant_name: str,
        domain: str,
        created_at: datetime,
        seed: int = 1,
        p2: bool = True,
        with_defaults: bool = True,
    ) -> None:
        """A tenant; ``with_defaults`` adds what every tenant has: the calling app's service
        principal, one PIM policy per built-in role, and licences (off when loading a file)."""
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self.domain = domain
        self.created_at = created_at
        self.seed = seed
        self.p2 = p2
        self.ids = IdFactory(f"{seed}:{tenant_id}")
        self._seq = 0
        # The calling application (app-only token) as it appears in createdBy and audits.
        self.caller_app_id = ""
        self.caller_app_name = "PIM Rollout"
        self.caller_service_principal_id = ""
        self.users: dict[str, User] = {}
        self.users_by_upn: dict[str, str] = {}
        self.groups: dict[str, Group] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.roles: dict[str, RoleDefinition] = {role.id: role for role in BUILT_IN_ROLES}
        self.actives = ScheduleStore("active")
        self.eligibles = ScheduleStore("eligible")
        self.requests: dict[str, ScheduleRequest] = {}
        self.policies: dict[str, Policy] = {}
        self.policy_by_role: dict[str, str] = {}
        self.reviews: dict[str, ReviewDefinition] = {}
        self.skus: list[Sku] = []
        self.outbox: list[OutboxMessage] = []
        self.audits: list[AuditRecord] = []
        self.audits_by_id: dict[str, AuditRecord] = {}
        self.timeline: list[TimelineEntry] = []
        self.pending: list[PendingEvent] = []
        self.granted_permissions: set[str] = set(DEFAULT_GRANTED_PERMISSIONS)
        self.profile = Profile()
        if with_defaults:
            app = self.add_service_principal(
                ServicePrincipal(
                    id=self.ids.guid(), app_id=self.ids.guid(), display_name="PIM Rollout"
                )
            )
            self.caller_app_id = app.app_id
            self.caller_service_principal_id = app.id
            for role in BUILT_IN_ROLES:
                self.add_default_policy(role.id)
            self.rebuild_skus()

    # --- sequence ------------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq

    def restore_seq(self, value: int) -> None:
        self._seq = max(self._seq, value)

    # --- directory -----------------------------------------------------------------------
    def add_user(self, user: User) -> User:
        user.seq = user.seq or self.next_seq()
        self.users[user.id] = user
        self.users_by_upn[user.user_principal_name.lower()] = user.id
        return user

    def add_group(self, group: Group) -> Group:
        group.seq = group.seq or self.next_seq()
        self.groups[group.id] = group
        return group

    def add_service_principal(self, sp: ServicePrincipal) -> ServicePrincipal:
        sp.seq = sp.seq or self.next_seq()
        self.service_principals[sp.id] = sp
        return sp

    def principal(self, object_id: str) -> Principal | None:
        return (
            self.users.get(object_id)
            or self.groups.get(object_id)
            or self.service_principals.get(object_id)
        )

    def user_by_id_or_upn(self, key: str) -> User | None:
        user = self.users.get(key)
        if user is None:
            user_id = self.users_by_upn.get(key.lower())
            user = self.users.get(user_id) if user_id else None
        return user

    def transitive_members(self, group_id: str) -> list[Principal]:
        """Members of a group and of its nested groups, each once, nested groups included."""
        seen: set[str] = set()
        found: list[Principal] = []
        stack = [group_id]
        while stack:
            group = self.groups.get(stack.pop())
            if group is None:
                continue
            for member_id in group.member_ids:
                if member_id in seen:
                    continue
                seen.add(member_id)
                member = self.principal(member_id)
                if member is None:
                    continue
                found.append(member)
                if isinstance(member, Group):
                    stack.append(member.id)
        return found

    def groups_containing(self, principal_id: str) -> list[Group]:
        """Groups that hold ``principal_id`` directly or through nesting."""
        result: list[Group] = []
        frontier = {principal_id}
        seen: set[str] = set()
        while frontier:
            parents = [
                g for g in self.groups.values() if g.id not in seen and frontier & set(g.member_ids)
            ]
            seen.update(g.id for g in parents)
            result.extend(parents)
            frontier = {g.id for g in parents}
        return result

    # --- schedules -----------------------------------------------------------------------
    def store(self, kind: ScheduleKind) -> ScheduleStore:
        return self.actives if kind == "active" else self.eligibles

    def add_schedule(self, schedule: Schedule) -> Schedule:
        schedule.seq = schedule.seq or self.next_seq()
        self.store(schedule.kind).add(schedule)
        return schedule

    # --- policies ------------------------------------------------------------------------
    def add_policy(self, policy: Policy) -> Policy:
        policy.seq = policy.seq or self.next_seq()
        self.policies[policy.id] = policy
        self.policy_by_role[policy.role_definition_id] = policy.id
        return policy

    def add_default_policy(self, role_id: str) -> Policy:
        return self.add_policy(
            Policy(
                id=f"DirectoryRole_{self.tenant_id}_{self.ids.guid()}",
                role_definition_id=role_id,
                rules=default_rules(),
            )
        )

    def policy_for_role(self, role_id: str) -> Policy:
        policy_id = self.policy_by_role.get(role_id)
        if policy_id is None:  # every role has a policy in Entra; a hand-built state may lack it
            return self.add_default_policy(role_id)
        return self.policies[policy_id]

    # --- licences ------------------------------------------------------------------------
    def rebuild_skus(self) -> None:
        """Office E3 plus Entra ID P2 (or P1 without P2), sized to the user count."""
        seats = max(25, (len(self.users) // 25 + 1) * 25)
        rng = random.Random(f"skus:{self.tenant_id}")

        def new_id() -> str:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))

        account = new_id()
        members = sum(1 for u in self.users.values() if u.user_type == "Member")
        entra = catalog.SKU_ENTRA_P2 if self.p2 else catalog.SKU_ENTRA_P1
        self.skus = [
            Sku(catalog.SKU_OFFICE_E3, seats, members, account, new_id()),
            Sku(entra, seats, members, account, new_id()),
        ]

    # --- requests, audits, timeline --------------------------------------------------------
    def add_request(self, request: ScheduleRequest) -> ScheduleRequest:
        request.seq = request.seq or self.next_seq()
        self.requests[request.id] = request
        return request

    def add_audit(self, record: AuditRecord) -> AuditRecord:
        record.seq = record.seq or self.next_seq()
        self.audits.append(record)
        self.audits_by_id[record.id] = record
        return record

    def add_timeline(self, entry: TimelineEntry) -> None:
        """Insert keeping (at, seq) order: backdated activity history lands where it happened."""
        bisect.insort(self.timeline, entry, key=lambda e: (e.at, e.seq))

    def queue(self, event: PendingEvent) -> None:
        heapq.heappush(self.pending, event)
