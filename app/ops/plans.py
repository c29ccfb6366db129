"""``pim-rollout plans …``: list, read, watch and move plans on a server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.ops.client import DEFAULT_SERVER, api_path
from app.ops.jobs import run_long
from app.ops.options import (
    Output,
    OutputOpt,
    ReasonOpt,
    ServerOpt,
    TokenOpt,
    VersionOpt,
    WaitOpt,
    connect,
    deps_of,
    print_json,
    stderr_console,
    stdout_console,
)
from app.ops.render import plan_view, plans_table, preview_view
from app.ops.watch import watch_plan

plans_cli = typer.Typer(
    help="Plans on a server, over HTTP (--server / PIM_ROLLOUT_SERVER).", no_args_is_help=True
)

PlanArg = Annotated[str, typer.Argument(help="the plan's id", show_default=False)]


@plans_cli.command("list")
def list_plans(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's")] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="only plans in this state (repeatable)")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Plans, newest first, with their current phase."""
    params: dict[str, Any] = {"tenant_id": tenant, "state": state or None}
    with connect(ctx, server, token) as client:
        plans = client.get(api_path("plans"), {k: v for k, v in params.items() if v})
    if output is Output.json:
        print_json(plans)
    else:
        stdout_console().print(plans_table(plans))


@plans_cli.command("get")
def get_plan(
    ctx: typer.Context,
    plan_id: PlanArg,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="redraw until the plan settles (ended, paused or at a manual gate); "
            "exit 4 if it failed",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="seconds between reads with --watch")
    ] = 2.0,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """A plan with its phases, due times, gates and progress."""
    with connect(ctx, server, token) as client:
        if not watch:
            plan = client.get(api_path("plans", plan_id))
        else:
            outcome = watch_plan(
                client,
                plan_id,
                interval=interval,
                sleep=deps_of(ctx).sleep,
                console=stdout_console() if output is Output.table else None,
            )
            if output is Output.json:
                print_json(outcome.plan)
                typer.echo(f"pim-rollout: {outcome.message}", err=True)
            raise typer.Exit(int(outcome.code))
    if output is Output.json:
        print_json(plan)
    else:
        stdout_console().print(plan_view(plan))


def _act(
    ctx: typer.Context,
    action: str,
    plan_id: str,
    *,
    server: str,
    token: str | None,
    output: Output,
    reason: str | None = None,
    expected_version: int | None = None,
    phase: str | None = None,
    wait: int | None = None,
) -> None:
    body = {
        key: value
        for key, value in (
            ("reason", reason),
            ("expected_version", expected_version),
            ("phase", phase),
        )
        if value is not None
    }
    with connect(ctx, server, token) as client:
        plan = run_long(
            client,
            "POST",
            api_path("plans", plan_id, action),
            body=body,
            wait=wait,
            console=stderr_console(),
            sleep=deps_of(ctx).sleep,
        )
    if output is Output.json:
        print_json(plan)
    else:
        stdout_console().print(plan_view(plan))


@plans_cli.command("start")
def start(
    ctx: typer.Context,
    plan_id: PlanArg,
    reason: ReasonOpt = None,
    expected_version: VersionOpt = None,
    wait: WaitOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Start: preflight checks, then the baseline (a job, followed with its progress)."""
    _act(
        ctx,
        "start",
        plan_id,
        server=server,
        token=token,
        output=output,
        reason=reason,
        expected_version=expected_version,
        wait=wait,
    )


def _simple_action(action: str, summary: str) -> None:
    """``plans ACTION ID [--reason R] [--expected-version N]``: an action with nothing else."""

    def command(
        ctx: typer.Context,
        plan_id: PlanArg,
        reason: ReasonOpt = None,
        expected_version: VersionOpt = None,
        server: ServerOpt = DEFAULT_SERVER,
        token: TokenOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        _act(
            ctx,
            action,
            plan_id,
            server=server,
            token=token,
            output=output,
            reason=reason,
            expected_version=expected_version,
        )

    plans_cli.command(action, help=summary)(command)


for _action, _summary in (
    ("pause", "Pause at the next item boundary."),
    ("resume", "Resume a paused plan."),
    ("retry", "Retry a failed phase."),
    ("abort", "Abort: a draft or scheduled plan is cancelled; a started one rolls back."),
):
    _simple_action(_action, _summary)


@plans_cli.command("advance")
def advance(
    ctx: typer.Context,
    plan_id: PlanArg,
    phase: Annotated[
        str | None, typer.Option("--phase", help="the phase whose manual gate to pass")
    ] = None,
    reason: ReasonOpt = None,
    expected_version: VersionOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Pass a manual gate."""
    _act(
        ctx,
        "advance",
        plan_id,
        server=server,
        token=token,
        output=output,
        reason=reason,
        expected_version=expected_version,
        phase=phase,
    )


@plans_cli.command("rollback")
def rollback(
    ctx: typer.Context,
    plan_id: PlanArg,
    phase: Annotated[
        str | None, typer.Option("--phase", help="roll back this phase only (default: the plan)")
    ] = None,
    reason: ReasonOpt = None,
    expected_version: VersionOpt = None,
    wait: WaitOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Roll back what the plan (or one phase) changed, newest first."""
    _act(
        ctx,
        "rollback",
        plan_id,
        server=server,
        token=token,
        output=output,
        reason=reason,
        expected_version=expected_version,
        phase=phase,
        wait=wait,
    )


@plans_cli.command("preview")
def preview(
    ctx: typer.Context,
    plan_id: PlanArg,
    phase: Annotated[str | None, typer.Option("--phase", help="show this phase only")] = None,
    wait: WaitOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Dry run: per phase, exactly what would change (reads the tenant, writes nothing)."""
    with connect(ctx, server, token) as client:
        result = run_long(
            client,
            "POST",
            api_path("plans", plan_id, "preview"),
            wait=wait,
            console=stderr_console(),
            sleep=deps_of(ctx).sleep,
        )
    if phase is not None:
        phases = [p for p in result.get("phases") or [] if p.get("phase") == phase]
        if not phases:
            typer.echo(f"pim-rollout: the plan has no phase {phase!r}", err=True)
            raise typer.Exit(1)
        result = {**result, "phases": phases}
    if output is Output.json:
        print_json(result)
    else:
        stdout_console().print(preview_view(result))
