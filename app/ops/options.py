"""What every HTTP command takes (server, token, output) and how it reports a failure."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from app.ops.client import OpsClient
from app.ops.errors import OpsError


class Output(StrEnum):
    table = "table"
    json = "json"


ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="PIM_ROLLOUT_SERVER",
        help="the pim-rollout server",
        show_envvar=True,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="PIM_ROLLOUT_TOKEN",
        help="an API token (never printed)",
        show_envvar=True,
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="table for people, json (the API's own) for scripts"),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="why: recorded in the plan's history")
]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--expected-version", min=1, help="refuse (409) if the plan changed since this version"
    ),
]
WaitOpt = Annotated[
    int | None,
    typer.Option(
        "--wait",
        min=0,
        max=600,
        help="seconds the server may take before it answers with a job to follow "
        "(Prefer: wait=N; 2 without it)",
    ),
]


@dataclass
class OpsDeps:
    """What tests replace: the HTTP transport, and how the commands wait between polls."""

    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = field(default=time.sleep)


def deps_of(ctx: typer.Context) -> OpsDeps:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, OpsDeps) else OpsDeps()


def stdout_console() -> Console:
    return _console(stderr=False)


def stderr_console() -> Console:
    return _console(stderr=True)


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # Piped or captured: wide enough that ids and tables are not folded.
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 160))
    return console


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def connect(ctx: typer.Context, server: str, token: str | None) -> Iterator[OpsClient]:
    """A client for the command; an :class:`OpsError` ends the command with its exit code.

    The message goes to stderr as ``pim-rollout: …``; the token is never part of it.
    """
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{server!r} is not an http(s) address", param_hint="'--server' / PIM_ROLLOUT_SERVER"
        )
    try:
        with OpsClient(server, token, transport=deps_of(ctx).transport) as client:
            yield client
    except OpsError as exc:
        typer.echo(f"pim-rollout: {exc.message}", err=True)
        raise typer.Exit(int(exc.code)) from None
