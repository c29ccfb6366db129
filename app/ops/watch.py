"""``plans get --watch``: redraw the plan until it settles, then say how it ended.

A plan has settled when it is completed, failed, rolled back or cancelled, or when it waits for
a person: paused, or a manual gate to advance (or a draft nobody has started). An automatic
phase held by a health gate or a progression window is still moving, so the watch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from app.ops.client import OpsClient, api_path
from app.ops.errors import ExitCode, OpsError
from app.ops.render import plan_view

ENDED = {"completed", "failed", "rolled_back", "cancelled"}
# The server may be restarting: give up after this many failed reads in a row.
READ_ATTEMPTS = 5


@dataclass(frozen=True)
class Settled:
    plan: dict[str, Any]
    message: str
    code: ExitCode


def settled(plan: Mapping[str, Any]) -> tuple[str, ExitCode] | None:
    """How the plan has settled (what to say, and the exit code), or None while it moves."""
    plan_state = str(plan.get("state"))
    name = f"plan {plan.get('id')}"
    if plan_state == "failed":
        failed = [
            f"{p['key']}: {p.get('status_reason') or 'failed'}"
            for p in plan.get("phases") or []
            if p.get("state") == "failed"
        ]
        reason = "; ".join(failed) or plan.get("status_reason") or "no reason given"
        return f"{name} failed ({reason})", ExitCode.plan_failed
    if plan_state in ENDED:
        return f"{name} is {plan_state.replace('_', ' ')}", ExitCode.ok
    if plan_state == "paused":
        return f"{name} is paused: resume it with `pim-rollout plans resume`", ExitCode.ok
    if plan_state == "draft":
        return f"{name} is a draft: start it with `pim-rollout plans start`", ExitCode.ok
    phases: Sequence[Mapping[str, Any]] = plan.get("phases") or []
    if plan_state == "running" and not any(p.get("state") == "running" for p in phases):
        gate = next(
            (p for p in phases if p.get("state") == "awaiting_gate" and p.get("gate") == "manual"),
            None,
        )
        if gate is not None:
            return (
                f"{name} is awaiting the manual gate of phase {gate['key']!r}: advance it with "
                f"`pim-rollout plans advance {plan.get('id')} --phase {gate['key']}`",
                ExitCode.ok,
            )
    return None


def watch_plan(
    client: OpsClient,
    plan_id: str,
    *,
    interval: float,
    sleep: Callable[[float], None],
    console: Console | None,
) -> Settled:
    """Poll the plan until it settles; with a ``console``, redraw it there as it goes."""
    path = api_path("plans", plan_id)
    live = Live(console=console, auto_refresh=False) if console is not None else None
    failures = 0
    plan: dict[str, Any] = client.get(path)
    try:
        if live is not None:
            live.start()
        while True:
            outcome = settled(plan)
            if live is not None:
                live.update(_frame(plan, outcome), refresh=True)
            if outcome is not None:
                if live is not None and console is not None:
                    live.stop()
                    # One line, never folded: scripts and people copy the command in it.
                    console.print(
                        outcome[0], soft_wrap=True, style="bold red" if outcome[1] else "bold"
                    )
                return Settled(plan, *outcome)
            sleep(interval)
            try:
                plan = client.get(path)
                failures = 0
            except OpsError as exc:
                failures += 1
                if exc.code is not ExitCode.unreachable or failures >= READ_ATTEMPTS:
                    raise
    finally:
        if live is not None:
            live.stop()


def _frame(plan: Mapping[str, Any], outcome: tuple[str, ExitCode] | None) -> Group:
    if outcome is not None:
        return plan_view(plan)
    footer = Text("watching… (Ctrl-C stops watching; the plan carries on)", style="dim")
    return Group(plan_view(plan), footer)
