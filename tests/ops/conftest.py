"""The API in-process on an in-process simulated tenant (the API tests' own fixtures)."""

from tests.api.conftest import (  # noqa: F401
    app,
    client,
    clock,
    ctx,
    settings,
    sim_app,
    sim_tenant_body,
    tokens,
)
