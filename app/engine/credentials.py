"""Trying a tenant's credential on demand: a fresh token, then one cheap Graph read.

The check builds a credential of its own (``GraphClientFactory.one_off``), so it asks the
sign-in endpoint afresh: neither the token the tenant's shared client holds nor a refusal it
remembers decides the answer. The read is the Global Administrator role definition, which needs
only ``RoleManagement.Read.Directory``, a permission the product needs anyway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db.models import Tenant
from app.domain.clouds import graph_endpoint_for
from app.domain.roles import GLOBAL_ADMINISTRATOR
from app.domain.tenant import GraphLimits
from app.engine.context import EngineContext
from app.graph.errors import GraphCredentialError, GraphError, GraphForbiddenError
from app.logging import get_logger
from app.problems import TenantCredentialError
from app.services.tenants import credential_problem, usable_auth

log = get_logger(__name__)

CHECK_SECONDS = 20.0
"""A check answers within this long (retries of a failing Graph included)."""
SIMULATED = "simulated"


@dataclass(frozen=True)
class CredentialCheck:
    ok: bool
    credential_kind: str
    cloud: str
    graph_base_url: str
    detail: str
    checked_at: datetime
    problem: dict[str, Any] | None = None
    """When the credential got no token: the problem other requests answer with (424)."""


def cloud_of(tenant: Tenant) -> str:
    """``global``, ``usgov``, ``usgov_dod``, ``china``; ``simulated`` for a local tenant."""
    endpoint = graph_endpoint_for(tenant.graph_base_url)
    if endpoint is not None:
        return endpoint.cloud.value
    return SIMULATED if tenant.auth_kind == "none" else "unknown"


async def check_credential(ectx: EngineContext, tenant: Tenant) -> CredentialCheck:
    """Get a token with the tenant's credential and read one thing from Graph with it."""
    checked_at = ectx.clock.now()

    def result(ok: bool, detail: str, problem: dict[str, Any] | None = None) -> CredentialCheck:
        log.info("tenant.credential_checked", tenant_id=tenant.id, ok=ok)
        return CredentialCheck(
            ok=ok,
            credential_kind=tenant.auth_kind,
            cloud=cloud_of(tenant),
            graph_base_url=tenant.graph_base_url,
            detail=detail,
            checked_at=checked_at,
            problem=problem,
        )

    path = f"/roleManagement/directory/roleDefinitions/{GLOBAL_ADMINISTRATOR}"
    try:
        auth = usable_auth(tenant, ectx.secret_box)
        limits = GraphLimits.model_validate(tenant.graph_limits)
        async with asyncio.timeout(CHECK_SECONDS):
            try:
                async with ectx.graph_factory.one_off(
                    tenant.graph_base_url, auth, limits
                ) as client:
                    await client.ensure_token()
                    role = await client.get_role_definition(GLOBAL_ADMINISTRATOR)
            except GraphCredentialError as exc:
                raise credential_problem(tenant, exc) from None
    except TenantCredentialError as exc:
        return result(False, exc.detail, exc.to_problem())
    except TimeoutError:
        return result(
            False,
            f"no answer within {CHECK_SECONDS:.0f} s (from the sign-in endpoint or from Graph): "
            "try again; if it persists, check that the service can reach them",
        )
    except GraphError as exc:
        hint = (
            "; grant the app the RoleManagement.Read.Directory application permission (and "
            "the others the plan needs) with admin consent"
            if isinstance(exc, GraphForbiddenError)
            else ""
        )
        return result(
            False,
            f"a token was issued, but Graph refused the read of GET {path}: {exc}{hint}",
        )
    return result(
        True,
        f"a token was issued and Graph answered GET {path} ({role.display_name or role.id})",
    )
