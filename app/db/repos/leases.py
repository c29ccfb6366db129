"""Leases with fencing tokens: claimed by compare-and-set, checked on every engine write."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from app.db.models import Lease


class LeaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, name: str, *, holder: str, now: datetime, ttl: timedelta) -> int | None:
        """Take the lease if it is free, lapsed or already ours; returns the new fencing token.

        Each claim bumps the token, so a stalled earlier holder (even one with the same name)
        can no longer write: its token no longer matches.
        """
        statement = (
            update(Lease)
            .where(
                col(Lease.name) == name,
                (col(Lease.expires_at) < now) | (col(Lease.holder) == holder),
            )
            .values(
                holder=holder, token=col(Lease.token) + 1, acquired_at=now, expires_at=now + ttl
            )
            .returning(col(Lease.token))
        )
        token = self.session.execute(statement).scalar_one_or_none()
        if token is not None:
            return int(token)
        if self.session.get(Lease, name) is not None:
            return None  # held by someone else and not lapsed: losers see 0 rows
        try:
            with self.session.begin_nested():
                self.session.add(
                    Lease(name=name, holder=holder, token=1, acquired_at=now, expires_at=now + ttl)
                )
        except IntegrityError:
            return None  # another worker created it first
        return 1

    def fence(self, name: str, *, holder: str, token: int, now: datetime, ttl: timedelta) -> bool:
        """Renew our lease; False means it was taken over and nothing may be written."""
        statement = (
            update(Lease)
            .where(col(Lease.name) == name, col(Lease.holder) == holder, col(Lease.token) == token)
            .values(expires_at=now + ttl)
        )
        return bool(self.session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]

    def release(self, name: str, *, holder: str, token: int, now: datetime) -> None:
        statement = (
            update(Lease)
            .where(col(Lease.name) == name, col(Lease.holder) == holder, col(Lease.token) == token)
            .values(expires_at=now)
        )
        self.session.execute(statement)
