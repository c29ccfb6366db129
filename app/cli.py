"""The ``pim-rollout`` command: thin wrappers over the same services the API uses.

``plans`` and ``tenants`` are different: they drive a server over HTTP (``app.ops``).
"""

from __future__ import annotations

import gc
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.ops.plans import plans_cli
from app.ops.tenants import tenants_cli
from app.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    name="pim-rollout",
    help="Roll Entra ID PIM out in phases, with exact rollback.",
    no_args_is_help=True,
    add_completion=False,
)
plan_cli = typer.Typer(help="Work with plan files.", no_args_is_help=True)
tokens_cli = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
cli.add_typer(plan_cli, name="plan")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(plans_cli, name="plans")
cli.add_typer(tenants_cli, name="tenants")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"pim-rollout: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def migrate() -> None:
    """Upgrade the database to the newest schema."""
    from app.db.migrate import upgrade
    from app.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_level.value, settings.log_format.value)
    upgrade(settings.database_url)
    typer.echo("database is at the newest schema")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="skip migrations")] = False,
) -> None:
    """Run the API, the admin UI and the scheduler."""
    import uvicorn

    from app.db.migrate import upgrade
    from app.logging import configure_logging
    from app.main import create_app

    settings = _settings()
    configure_logging(settings.log_level.value, settings.log_format.value)
    if not no_migrate:
        upgrade(settings.database_url)
    app = create_app(settings)
    # What start-up made (modules, schemas, routes) lives as long as the process: out of the
    # collector's way, a full collection scans only what requests and the engine allocate,
    # instead of stopping the event loop for a large fraction of a second.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning")


@plan_cli.command("validate")
def plan_validate(
    files: Annotated[list[Path], typer.Argument(help="plan YAML files", metavar="FILE...")],
) -> None:
    """Check plan files: FILE: path: reason per problem (exit 1), else a summary (exit 0)."""
    from app.domain.validation import PlanInvalidError
    from app.services.templates import read_plan_file

    failed = False
    for file in files:
        try:
            spec = read_plan_file(file)
        except PlanInvalidError as exc:
            failed = True
            for problem in exc.problems:
                typer.echo(f"{file}: {problem.path}: {problem.message}")
            continue
        steps = sum(len(p.steps) for p in spec.phases)
        typer.echo(
            f"{file}: ok: plan {spec.name!r} with {len(spec.phases)} phases "
            f"({', '.join(p.key for p in spec.phases)}), {len(spec.roles)} target roles, "
            f"{steps} steps"
        )
    raise typer.Exit(1 if failed else 0)


@tokens_cli.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")],
    name: Annotated[str, typer.Option(help="who or what uses this token")],
) -> None:
    """Create an API token; it is printed once, on the last line, and only its hash is stored."""
    from app.db.migrate import upgrade
    from app.db.session import Database
    from app.problems import InvalidInputError
    from app.services.tokens import create_token

    settings = _settings()
    upgrade(settings.database_url)
    db = Database.from_url(settings.database_url, null_pool=True)
    try:
        with db.writing() as session:
            plaintext, row = create_token(session, role=role, name=name, now=datetime.now(UTC))
    except InvalidInputError as exc:
        for error in exc.extra.get("errors", []):
            typer.echo(f"pim-rollout: --{error['path']}: {error['message']}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {row.role} token {row.name!r} (shown once; store it now):", err=True)
    typer.echo(plaintext)


@cli.command()
def demo(
    port: Annotated[int, typer.Option(help="port for the UI and API")] = 8000,
    manual_gates: Annotated[
        bool, typer.Option("--manual-gates", help="leave manual gates for you to advance")
    ] = False,
    users: Annotated[int, typer.Option(help="users in the simulated tenant")] = 300,
    admins: Annotated[int, typer.Option(help="admins in the simulated tenant")] = 40,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="stop the server when the plan finishes")
    ] = False,
    rollback_at_end: Annotated[
        bool, typer.Option("--rollback-at-end", help="roll the whole plan back once it completes")
    ] = False,
) -> None:
    """SQLite + an in-process simulated tenant + the demo plan; prints the UI URL and a token."""
    import asyncio

    from rich.console import Console

    from app.demo import DemoOptions, run_demo
    from app.logging import configure_logging

    configure_logging("WARNING")
    options = DemoOptions(
        port=port,
        manual_gates=manual_gates,
        users=users,
        admins=admins,
        exit_when_done=exit_when_done,
        rollback_at_end=rollback_at_end,
    )
    raise typer.Exit(asyncio.run(run_demo(options, Console())))


@cli.command("simulate-tenant")
def simulate_tenant(
    port: Annotated[int, typer.Option(help="port to serve the simulated Graph on")],
    host: Annotated[str, typer.Option(help="bind address (loopback by default)")] = "127.0.0.1",
    users: Annotated[int, typer.Option(help="users to generate")] = 200,
    admins: Annotated[int, typer.Option(help="admins holding standing roles")] = 30,
    eligibilities: Annotated[
        int, typer.Option(help="PIM eligibility schedules to generate over the users")
    ] = 0,
    groups: Annotated[int, typer.Option(help="extra groups (one in ten role-assignable)")] = 0,
    seed: Annotated[int, typer.Option(help="seed for the generator and the faults")] = 1,
    latency_ms: Annotated[float, typer.Option(help="latency added to each request")] = 0.0,
    write_quota: Annotated[int, typer.Option(help="writes allowed per write window")] = 3000,
    write_window_seconds: Annotated[float, typer.Option(help="the write window")] = 150.0,
    fault_rate: Annotated[float, typer.Option(help="share of requests answered 5xx")] = 0.0,
    lost_response_rate: Annotated[
        float, typer.Option(help="share of writes committed whose answer is lost")
    ] = 0.0,
    min_change_interval: Annotated[
        float, typer.Option(help="seconds before an assignment may change again")
    ] = 300.0,
    no_p2: Annotated[bool, typer.Option("--no-p2", help="no Entra ID P2 licence")] = False,
    tenant_file: Annotated[
        Path | None, typer.Option(help="load the tenant (JSON/YAML state or an inventory export)")
    ] = None,
) -> None:
    """Serve a simulated Entra tenant that behaves like Microsoft Graph (a test double)."""
    import json

    from pydantic import ValidationError

    from app.simulator.faults import SimLimits
    from app.simulator.seed import generate_tenant, load_tenant, tenant_from_inventory
    from app.simulator.standalone import run_standalone

    try:
        limits = SimLimits(
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            lost_response_rate=lost_response_rate,
            seed=seed,
            write_quota=write_quota,
            write_window_seconds=write_window_seconds,
            min_change_interval_seconds=min_change_interval,
        )
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(
                f"pim-rollout: --{str(error['loc'][0]).replace('_', '-')}: {error['msg']}", err=True
            )
        raise typer.Exit(2) from None
    if tenant_file is not None:
        try:
            if tenant_file.suffix == ".json" and json.loads(tenant_file.read_text()).get(
                "format", ""
            ).startswith("pim-rollout.inventory"):
                state = tenant_from_inventory(json.loads(tenant_file.read_text()))
            else:
                state = load_tenant(tenant_file)
        except (OSError, ValueError) as exc:
            typer.echo(f"pim-rollout: --tenant-file {tenant_file}: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        try:
            state = generate_tenant(
                users=users,
                admins=admins,
                seed=seed,
                p2=not no_p2,
                eligibilities=eligibilities,
                groups=groups,
            )
        except ValueError as exc:
            typer.echo(f"pim-rollout: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(
        f"simulated tenant on http://{host}:{port}/v1.0 (control API under /_sim); "
        f"{len(state.users)} users; Ctrl-C stops it",
        err=True,
    )
    run_standalone(host=host, port=port, state=state, limits=limits)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
