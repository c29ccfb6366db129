from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from app.db.models import Tenant


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        self.session.flush()
        return tenant

    def get(self, tenant_id: str) -> Tenant | None:
        return self.session.get(Tenant, tenant_id)

    def get_by_name(self, name: str) -> Tenant | None:
        return self.session.exec(select(Tenant).where(Tenant.name == name)).first()

    def list_tenants(self) -> Sequence[Tenant]:
        return self.session.exec(select(Tenant).order_by(col(Tenant.name))).all()
