"""``pim-rollout tenants …``: tenants on a server, their inventory and posture."""

from __future__ import annotations

from typing import Annotated

import typer

from app.ops.client import DEFAULT_SERVER, api_path
from app.ops.errors import ExitCode, OpsError
from app.ops.jobs import run_long
from app.ops.options import (
    Output,
    OutputOpt,
    ServerOpt,
    TokenOpt,
    WaitOpt,
    connect,
    deps_of,
    print_json,
    stderr_console,
    stdout_console,
)
from app.ops.render import any_view, inventory_view, tenant_view, tenants_table

tenants_cli = typer.Typer(
    help="Tenants on a server, over HTTP (--server / PIM_ROLLOUT_SERVER).", no_args_is_help=True
)

TenantArg = Annotated[str, typer.Argument(help="the tenant's id", show_default=False)]


@tenants_cli.command("list")
def list_tenants(
    ctx: typer.Context,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Tenants with their Graph endpoint, auth kind, break-glass accounts and bindings."""
    with connect(ctx, server, token) as client:
        tenants = client.get(api_path("tenants"))
    if output is Output.json:
        print_json(tenants)
    else:
        stdout_console().print(tenants_table(tenants))


@tenants_cli.command("get")
def get_tenant(
    ctx: typer.Context,
    tenant_id: TenantArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """One tenant's settings (secrets are never returned by the server)."""
    with connect(ctx, server, token) as client:
        tenant = client.get(api_path("tenants", tenant_id))
    if output is Output.json:
        print_json(tenant)
    else:
        stdout_console().print(tenant_view(tenant))


@tenants_cli.command("inventory")
def inventory(
    ctx: typer.Context,
    tenant_id: TenantArg,
    latest: Annotated[
        bool, typer.Option("--latest", help="show the newest inventory instead of taking one")
    ] = False,
    wait: WaitOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Take an inventory of every permanent Active assignment now (a job, with progress)."""
    path = api_path("tenants", tenant_id, "inventory")
    with connect(ctx, server, token) as client:
        if latest:
            result = client.get(f"{path}/latest")
        else:
            result = run_long(
                client,
                "POST",
                path,
                wait=wait,
                console=stderr_console(),
                sleep=deps_of(ctx).sleep,
            )
    if output is Output.json:
        print_json(result)
    else:
        stdout_console().print(inventory_view(result))


@tenants_cli.command("posture")
def posture(
    ctx: typer.Context,
    tenant_id: TenantArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The tenant's privileged-access posture report."""
    path = api_path("tenants", tenant_id, "reports", "posture")
    with connect(ctx, server, token) as client:
        try:
            report = client.get(path)
        except OpsError as exc:
            if _route_missing(exc):
                raise OpsError(
                    f"{client.server} has no posture report (GET {path} is not a route "
                    "there): it runs an older pim-rollout",
                    ExitCode.refused,
                ) from None
            raise
    if output is Output.json:
        print_json(report)
    else:
        stdout_console().print(any_view(report, "Posture"))


def _route_missing(exc: OpsError) -> bool:
    # An unknown route is the framework's bare 404 (type about:blank, detail "Not Found"); an
    # unknown tenant is the API's own not-found problem, which names the tenant.
    return exc.status == 404 and exc.problem.get("type", "about:blank") == "about:blank"
