"""The ``pim-rollout`` command: thin wrappers over the same services the API uses."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

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
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


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
    from app.db.session import create_db_engine, create_session_factory, unit_of_work
    from app.problems import InvalidInputError
    from app.services.tokens import create_token

    settings = _settings()
    upgrade(settings.database_url)
    factory = create_session_factory(create_db_engine(settings.database_url))
    try:
        with unit_of_work(factory) as session:
            plaintext, row = create_token(session, role=role, name=name, now=datetime.now(UTC))
    except InvalidInputError as exc:
        for error in exc.extra.get("errors", []):
            typer.echo(f"pim-rollout: --{error['path']}: {error['message']}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {row.role} token {row.name!r} (shown once; store it now):", err=True)
    typer.echo(plaintext)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
