"""Collect a tenant's PIM activity, storing only what is new since the last run.

Three sources, each committed with its cursor so a failure in one keeps the others' progress.
The audit log is read first: it is the change feed. Graph offers no delta query on PIM's
requests or schedules, and no date filter on requests (reference §11.2), but every change to
them is an audit record naming its principal, and both lists filter on ``principalId``. So a
collection reads requests and standing assignments *in full* only on a tenant's first run, after
a run that failed, every ``full_read_seconds``, or when the new audit records name more than
``incremental_max_principals`` principals; otherwise it reads just those principals' (none at
all when nothing changed).

* **requests**: self-service assignment requests (``selfActivate``, ``selfDeactivate``); only
  requests not stored yet, or whose status or window changed (an approval decided), are
  written. The cursor
  keeps the newest ``createdDateTime`` stored. Graph purges requests after ~45 days; ours stay.
* **audits**: directory audit records of category RoleManagement since the cursor (minus an
  overlap, because audit records arrive late), deduplicated by id. Paced by the client at the
  reports throttle (5 requests / 10 s).
* **assignments**: the permanent Active assignments (state, not events): new ones are stored
  with the time first seen, vanished ones get ``gone_at``. The cursor's ``position`` is when
  they were last read in full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlmodel import Session

from app.db.models import MonitoringCursor, StandingAssignmentRecord
from app.db.repos.monitoring import MonitoringRepository
from app.db.session import Database
from app.domain.rules import EXPIRATION_END_USER
from app.graph.client import LARGE_PAGE, GraphClient
from app.graph.errors import GraphBadRequestError, GraphError, GraphNotFoundError
from app.graph.models import (
    DirectoryAudit,
    ExpirationRule,
    RoleAssignmentScheduleInstance,
    ScheduleRequest,
    ScheduleRequestAction,
)
from app.logging import get_logger
from app.services.monitoring.records import (
    ROLE_MANAGEMENT,
    audit_row,
    aware,
    is_collected,
    new_request_row,
    update_request_row,
)
from app.settings import MonitoringSettings

log = get_logger(__name__)

REQUESTS = "requests"
AUDITS = "audits"
ASSIGNMENTS = "assignments"
SOURCES = (REQUESTS, AUDITS, ASSIGNMENTS)
PRINCIPALS_AT_ONCE = 4
T = TypeVar("T")


class CollectionError(Exception):
    """Graph refused or failed while collecting; the message names the source."""


@dataclass(frozen=True)
class CollectionResult:
    tenant_id: str
    at: datetime
    incremental: bool = False
    requests_new: int = 0
    requests_updated: int = 0
    audits_new: int = 0
    assignments_new: int = 0
    assignments_gone: int = 0


def _mark_run(cursor: MonitoringCursor, *, now: datetime, error: str | None) -> None:
    cursor.last_run_at = now
    cursor.last_error = error
    if error is None:
        cursor.last_success_at = now


def _record_failure(
    session: Session, tenant_id: str, source: str, now: datetime, error: str
) -> None:
    cursor = MonitoringRepository(session).cursor_for_update(tenant_id, source)
    _mark_run(cursor, now=now, error=error)


class TenantCollector:
    """One collection run for one tenant (use :func:`collect_tenant`)."""

    def __init__(
        self,
        *,
        db: Database,
        client: GraphClient,
        tenant_id: str,
        now: datetime,
        settings: MonitoringSettings,
    ) -> None:
        self.db = db
        self.client = client
        self.tenant_id = tenant_id
        self.now = now
        self.settings = settings
        self.history_start = now - timedelta(days=settings.history_days)

    # -- requests ----------------------------------------------------------------------------

    async def _for_principals(
        self, principals: set[str], read: Callable[[str], Awaitable[list[T]]]
    ) -> list[T]:
        gate = asyncio.Semaphore(PRINCIPALS_AT_ONCE)

        async def one(principal_id: str) -> list[T]:
            async with gate:
                return await read(principal_id)

        found = await asyncio.gather(*(one(p) for p in sorted(principals)))
        return [item for items in found for item in items]

    async def requests(self, principals: set[str] | None = None) -> tuple[int, int]:
        """All requests (``principals`` None), or only those of ``principals``."""
        if principals is None:
            listed = [
                r
                async for r in self.client.iter_assignment_requests(top=LARGE_PAGE)
                if is_collected(r)
            ]
        else:

            async def of(principal_id: str) -> list[ScheduleRequest]:
                return [
                    r
                    async for r in self.client.iter_assignment_requests(principal_id=principal_id)
                    if is_collected(r)
                ]

            listed = await self._for_principals(principals, of)

        def unknown(session: Session) -> tuple[list[ScheduleRequest], set[str], dict[str, str]]:
            repo = MonitoringRepository(session)
            known = repo.requests_by_id(self.tenant_id, [r.id for r in listed])
            fresh = [r for r in listed if r.id not in known]
            wanted = {(r.principal_id or "").lower() for r in fresh}
            return fresh, wanted, repo.known_principal_names(self.tenant_id, sorted(wanted))

        fresh, wanted, names = await self.db.read(unknown)
        names.update(await self._resolve_names(wanted - set(names)))
        maxima = await self._role_maxima(
            {
                (r.role_definition_id or "").lower()
                for r in fresh
                if r.action_kind is ScheduleRequestAction.self_activate
            }
        )
        return await self.db.write(partial(self._store_requests, listed, names, maxima))

    def _store_requests(
        self,
        listed: list[ScheduleRequest],
        names: dict[str, str],
        maxima: dict[str, timedelta | None],
        session: Session,
    ) -> tuple[int, int]:
        added = updated = 0
        repo = MonitoringRepository(session)
        stored = repo.requests_by_id(self.tenant_id, [r.id for r in listed])
        newest: datetime | None = None
        oldest: datetime | None = None
        for request in listed:
            row = stored.get(request.id)
            if row is not None:
                if update_request_row(row, request, now=self.now):
                    updated += 1
                    session.add(row)
                continue
            role_id = (request.role_definition_id or "").lower()
            max_duration = maxima.get(role_id)
            new_row = new_request_row(
                self.tenant_id,
                request,
                now=self.now,
                principal_name=names.get((request.principal_id or "").lower()),
                max_duration_seconds=(
                    int(max_duration.total_seconds())
                    if max_duration is not None
                    and request.action_kind is ScheduleRequestAction.self_activate
                    else None
                ),
            )
            if new_row is None:
                continue
            repo.add(new_row)
            added += 1
            newest = max(newest or new_row.requested_at, new_row.requested_at)
            oldest = min(oldest or new_row.requested_at, new_row.requested_at)
        cursor = repo.cursor_for_update(self.tenant_id, REQUESTS)
        if newest is not None:
            cursor.position = max(cursor.position or newest, newest)
        starts = [t for t in (cursor.covers_from, self.history_start, oldest) if t is not None]
        cursor.covers_from = min(starts)
        cursor.stored += added
        _mark_run(cursor, now=self.now, error=None)
        return added, updated

    async def _resolve_names(self, principal_ids: set[str]) -> dict[str, str]:
        """Display names (UPN for users) for coaching; a failure here only costs the names."""
        wanted = sorted(p for p in principal_ids if p)
        if not wanted:
            return {}
        try:
            found = await self.client.get_directory_objects(wanted)
        except GraphError as exc:
            log.warning("monitoring.names_unresolved", count=len(wanted), error=exc.code)
            return {}
        return {
            o.id.lower(): (o.user_principal_name or o.display_name or o.id)[:300] for o in found
        }

    async def _role_maxima(self, role_ids: Iterable[str]) -> dict[str, timedelta | None]:
        """Each role's activation maximum now (``Expiration_EndUser_Assignment``)."""
        maxima: dict[str, timedelta | None] = {}
        for role_id in sorted(r for r in role_ids if r):
            try:
                assignment = await self.client.get_policy_assignment(role_id)
                rule = await self.client.get_policy_rule(assignment.policy_id, EXPIRATION_END_USER)
            except GraphNotFoundError:
                maxima[role_id] = None
                continue
            maxima[role_id] = rule.maximum_timedelta if isinstance(rule, ExpirationRule) else None
        return maxima

    # -- audit records -----------------------------------------------------------------------

    async def audits(self) -> tuple[int, set[str] | None]:
        """New audit records stored, and the principals they name (None: one names none, so
        what changed can't be told from them)."""
        cursor = await self.db.read(
            lambda session: MonitoringRepository(session).get_cursor(self.tenant_id, AUDITS)
        )
        position = cursor.position if cursor is not None else None
        overlap = timedelta(seconds=self.settings.audit_overlap_seconds)
        since = position - overlap if position is not None else self.history_start
        records = await self._read_audits(since)
        return await self.db.write(partial(self._store_audits, records, position, since))

    def _store_audits(
        self,
        records: list[DirectoryAudit],
        position: datetime | None,
        since: datetime,
        session: Session,
    ) -> tuple[int, set[str] | None]:
        added = 0
        touched: set[str] | None = set()
        repo = MonitoringRepository(session)
        existing = repo.existing_audit_ids(self.tenant_id, [r.id for r in records])
        newest = position
        for record in records:
            row = audit_row(self.tenant_id, record, now=self.now)
            if row is None or row.audit_id in existing:
                continue
            existing.add(row.audit_id)
            repo.add(row)
            added += 1
            if row.principal_id is None:
                touched = None
            elif touched is not None:
                touched.add(row.principal_id)
            newest = max(newest or row.activity_at, row.activity_at)
        cursor_row = repo.cursor_for_update(self.tenant_id, AUDITS)
        cursor_row.position = newest
        cursor_row.covers_from = cursor_row.covers_from or since
        cursor_row.stored += added
        _mark_run(cursor_row, now=self.now, error=None)
        return added, touched

    async def _read_audits(self, since: datetime) -> list[DirectoryAudit]:
        """``category`` is not a documented filter (reference §11.1): if Graph refuses it, read
        by date alone and keep RoleManagement records here."""
        try:
            return [
                a
                async for a in self.client.iter_directory_audits(
                    since=since, category=ROLE_MANAGEMENT
                )
            ]
        except GraphBadRequestError:
            log.info("monitoring.audit_category_filter_refused", tenant_id=self.tenant_id)
        return [
            a
            async for a in self.client.iter_directory_audits(since=since)
            if (a.category or "").casefold() == ROLE_MANAGEMENT.casefold()
        ]

    # -- standing assignments ----------------------------------------------------------------

    async def assignments(self, principals: set[str] | None = None) -> tuple[int, int]:
        """All permanent Active assignments (``principals`` None), or only those of
        ``principals``: then only their stored assignments can be found gone."""
        if principals is None:
            instances = [
                i
                async for i in self.client.iter_assignment_schedule_instances(
                    assignment_type="Assigned", expand_principal=True, top=LARGE_PAGE
                )
            ]
        else:

            async def of(principal_id: str) -> list[RoleAssignmentScheduleInstance]:
                return [
                    i
                    async for i in self.client.iter_assignment_schedule_instances(
                        principal_id=principal_id, assignment_type="Assigned", expand_principal=True
                    )
                ]

            instances = await self._for_principals(principals, of)
        seen: dict[str, StandingAssignmentRecord] = {}
        for instance in instances:
            if not instance.is_permanent or not (
                instance.is_direct or instance.member_type is None
            ):
                continue
            assignment_id = (instance.role_assignment_origin_id or instance.id)[:200]
            principal = instance.principal
            seen[assignment_id] = StandingAssignmentRecord(
                tenant_id=self.tenant_id,
                assignment_id=assignment_id,
                principal_id=instance.principal_id.lower(),
                principal_type=principal.principal_type if principal else None,
                principal_name=(
                    (principal.user_principal_name or principal.display_name or "")[:300] or None
                )
                if principal
                else None,
                role_definition_id=instance.role_definition_id.lower(),
                directory_scope_id=instance.directory_scope_id or "/",
                created_outside_pim=aware(instance.start_date_time) is None,
                first_seen_at=self.now,
                last_seen_at=self.now,
            )
        return await self.db.write(partial(self._store_assignments, seen, principals))

    def _store_assignments(
        self,
        seen: dict[str, StandingAssignmentRecord],
        principals: set[str] | None,
        session: Session,
    ) -> tuple[int, int]:
        added = gone = 0
        repo = MonitoringRepository(session)
        known = repo.standing_by_assignment(
            self.tenant_id, principal_ids=None if principals is None else sorted(principals)
        )
        for assignment_id, fresh in seen.items():
            row = known.get(assignment_id)
            if row is None:
                repo.add(fresh)
                added += 1
                continue
            if row.gone_at is not None:
                # Back after it was gone: a new assignment as far as anyone can tell.
                row.first_seen_at = self.now
                row.gone_at = None
                added += 1
            row.last_seen_at = self.now
            row.principal_name = fresh.principal_name or row.principal_name
            session.add(row)
        for assignment_id, row in known.items():
            if assignment_id not in seen and row.gone_at is None:
                row.gone_at = self.now
                session.add(row)
                gone += 1
        cursor = repo.cursor_for_update(self.tenant_id, ASSIGNMENTS)
        if principals is None:
            cursor.position = self.now
        cursor.covers_from = cursor.covers_from or self.now
        cursor.stored += added
        _mark_run(cursor, now=self.now, error=None)
        return added, gone


async def collect_tenant(
    *,
    db: Database,
    client: GraphClient,
    tenant_id: str,
    now: datetime,
    settings: MonitoringSettings,
) -> CollectionResult:
    """One incremental collection of every source; raises :class:`CollectionError` on Graph
    failures after recording them on the source's cursor (earlier sources stay stored)."""
    collector = TenantCollector(
        db=db,
        client=client,
        tenant_id=tenant_id,
        now=now,
        settings=settings,
    )
    cursors = await db.read(lambda session: MonitoringRepository(session).list_cursors(tenant_id))
    source = AUDITS
    try:
        audits_new, touched = await collector.audits()
        principals = _incremental_principals(cursors, touched, now=now, settings=settings)
        source = REQUESTS
        requests_new, requests_updated = await collector.requests(principals)
        source = ASSIGNMENTS
        assignments_new, assignments_gone = await collector.assignments(principals)
    except GraphError as exc:
        error = f"{source}: {exc.code or exc.status}: {exc.message}"
        await db.write(
            partial(_record_failure, tenant_id=tenant_id, source=source, now=now, error=error)
        )
        raise CollectionError(error) from exc
    result = CollectionResult(
        tenant_id=tenant_id,
        at=now,
        incremental=principals is not None,
        requests_new=requests_new,
        requests_updated=requests_updated,
        audits_new=audits_new,
        assignments_new=assignments_new,
        assignments_gone=assignments_gone,
    )
    log.info(
        "monitoring.collected",
        tenant_id=tenant_id,
        incremental=result.incremental,
        requests_new=requests_new,
        requests_updated=requests_updated,
        audits_new=audits_new,
        assignments_new=assignments_new,
        assignments_gone=assignments_gone,
    )
    return result


def _incremental_principals(
    cursors: Sequence[MonitoringCursor],
    touched: set[str] | None,
    *,
    now: datetime,
    settings: MonitoringSettings,
) -> set[str] | None:
    """Whose requests and assignments this run reads: the principals the new audit records name,
    or None for everything. ``cursors`` are as the run found them (before the audits)."""
    by_source = {c.source: c for c in cursors}
    audits, requests, assignments = (by_source.get(s) for s in (AUDITS, REQUESTS, ASSIGNMENTS))
    if touched is None or len(touched) > settings.incremental_max_principals:
        return None
    if audits is None or requests is None or assignments is None:
        return None  # the tenant's first collection
    if any(c.last_error is not None or c.last_success_at is None for c in (requests, assignments)):
        return None  # the last run failed somewhere: what it missed is not known
    audited = aware(audits.last_success_at)
    if audited is None or any(
        (aware(c.last_success_at) or audited) < audited for c in (requests, assignments)
    ):
        return None  # audit records were stored without the reads they called for
    full = aware(assignments.position)
    if full is None or now - full >= timedelta(seconds=settings.full_read_seconds):
        return None
    return touched


def last_success(cursors: Sequence[MonitoringCursor]) -> datetime | None:
    """When every source last succeeded (the oldest of them), or None if one never did."""
    by_source = {c.source: c.last_success_at for c in cursors}
    times = [by_source.get(source) for source in SOURCES]
    if any(t is None for t in times):
        return None
    return min(t for t in times if t is not None)
