"""Subscribed SKUs and the Entra ID P2 check PIM needs (reference §9)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from app.graph.models._base import GraphModel, same_text

AAD_PREMIUM_P2_PLAN_NAME = "AAD_PREMIUM_P2"
AAD_PREMIUM_P2_PLAN_ID = "eec0eb4f-6444-4f95-aba0-50c24d67f998"


class ServicePlanInfo(GraphModel):
    service_plan_id: str | None = None
    service_plan_name: str | None = None
    provisioning_status: str | None = None
    applies_to: str | None = None

    @property
    def is_entra_id_p2(self) -> bool:
        return same_text(self.service_plan_name, AAD_PREMIUM_P2_PLAN_NAME) or same_text(
            self.service_plan_id, AAD_PREMIUM_P2_PLAN_ID
        )


class LicenseUnitsDetail(GraphModel):
    enabled: int = 0
    suspended: int = 0
    warning: int = 0
    locked_out: int = 0


class SubscribedSku(GraphModel):
    id: str
    account_id: str | None = None
    account_name: str | None = None
    applies_to: str | None = None
    capability_status: str | None = None
    consumed_units: int | None = None
    prepaid_units: LicenseUnitsDetail | None = None
    service_plans: list[ServicePlanInfo] = Field(default_factory=list)
    sku_id: str | None = None
    sku_part_number: str | None = None
    subscription_ids: list[str] = Field(default_factory=list)

    @property
    def provides_entra_id_p2(self) -> bool:
        """Enabled SKU with the ``AAD_PREMIUM_P2`` plan provisioned ``Success`` (by plan)."""
        return same_text(self.capability_status, "Enabled") and any(
            plan.is_entra_id_p2 and same_text(plan.provisioning_status, "Success")
            for plan in self.service_plans
        )


def has_entra_id_p2(skus: Iterable[SubscribedSku]) -> bool:
    """Whether the tenant is licensed for PIM through Entra ID P2 (reference §9)."""
    return any(sku.provides_entra_id_p2 for sku in skus)


def entra_id_p2_capacity(skus: Iterable[SubscribedSku]) -> int:
    """Seats: the enabled prepaid units of every SKU that provides Entra ID P2."""
    return sum(
        sku.prepaid_units.enabled
        for sku in skus
        if sku.provides_entra_id_p2 and sku.prepaid_units is not None
    )
