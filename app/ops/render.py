"""Rich tables of the API's JSON, for people (``--output json`` prints the JSON itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "completed": "green",
    "succeeded": "green",
    "running": "cyan",
    "rolling_back": "yellow",
    "awaiting_gate": "yellow",
    "paused": "yellow",
    "due": "blue",
    "scheduled": "blue",
    "failed": "bold red",
    "rolled_back": "magenta",
    "cancelled": "dim",
    "pending": "dim",
    "draft": "dim",
}


def state(value: Any) -> Text:
    text = str(value or "")
    return Text(text, style=STATE_STYLES.get(text, ""))


def when(value: Any) -> str:
    """``2026-03-09T14:30:00.123+00:00`` -> ``2026-03-09 14:30:00``."""
    if not value:
        return ""
    text = str(value).replace("T", " ")
    return text.split(".")[0].removesuffix("+00:00").removesuffix("Z")


def progress_text(progress: Mapping[str, Any]) -> str:
    total = int(progress.get("total") or 0)
    if not total:
        return ""
    text = f"{progress.get('done', 0)}/{total} done"
    for key in ("failed", "remaining", "skipped", "kept_active"):
        if progress.get(key):
            text += f", {progress[key]} {key.replace('_', ' ')}"
    return text


def current_phase(plan: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The phase to look at: one that runs or waits, else the last that moved."""
    phases: Sequence[Mapping[str, Any]] = plan.get("phases") or []
    for wanted in ("running", "failed", "awaiting_gate", "due"):
        found = next((p for p in phases if p.get("state") == wanted), None)
        if found is not None:
            return found
    moved = [p for p in phases if p.get("state") not in ("pending", None)]
    return moved[-1] if moved else (phases[0] if phases else None)


def plans_table(plans: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"{len(plans)} plan(s)", title_justify="left")
    for column in ("ID", "Name", "State", "Version", "Phase", "Converted", "Updated"):
        table.add_column(column, overflow="fold")
    for plan in plans:
        phase = current_phase(plan)
        done = sum(int(p["progress"].get("done") or 0) for p in plan.get("phases") or [])
        total = sum(int(p["progress"].get("total") or 0) for p in plan.get("phases") or [])
        table.add_row(
            str(plan["id"]),
            str(plan.get("name", "")),
            state(plan.get("state")),
            str(plan.get("version", "")),
            Text.assemble(f"{phase['key']} ", state(phase.get("state"))) if phase else "",
            f"{done}/{total}" if total else "",
            when(plan.get("updated_at")),
        )
    return table


def plan_view(plan: Mapping[str, Any]) -> Group:
    facts = _facts()
    facts.add_row("Plan", f"{plan.get('name', '')} ({plan['id']})")
    facts.add_row("Tenant", str(plan.get("tenant_id", "")))
    facts.add_row("State", Text.assemble(state(plan.get("state")), f"  version {plan['version']}"))
    if plan.get("status_reason"):
        facts.add_row("Reason", str(plan["status_reason"]))
    facts.add_row("Allowed", ", ".join(plan.get("allowed_events") or []) or "nothing")
    phases = Table(title="Phases", title_justify="left")
    for column in ("Phase", "State", "Gate", "Due", "Started", "Finished", "Progress", "Note"):
        phases.add_column(column, overflow="fold")
    for phase in plan.get("phases") or []:
        phases.add_row(
            str(phase["key"]),
            state(phase.get("state")),
            str(phase.get("gate", "")),
            when(phase.get("due_at")),
            when(phase.get("started_at")),
            when(phase.get("finished_at")),
            progress_text(phase.get("progress") or {}),
            str(phase.get("status_reason") or ""),
        )
    return Group(facts, phases)


def tenants_table(tenants: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"{len(tenants)} tenant(s)", title_justify="left")
    for column in ("ID", "Name", "Graph", "Auth", "Break-glass", "Bindings"):
        table.add_column(column, overflow="fold")
    for tenant in tenants:
        table.add_row(
            str(tenant["id"]),
            str(tenant.get("name", "")),
            str(tenant.get("graph_base_url", "")),
            str((tenant.get("auth") or {}).get("kind", "")),
            str(len(tenant.get("break_glass_ids") or [])),
            ", ".join(sorted(tenant.get("bindings") or {})),
        )
    return table


def tenant_view(tenant: Mapping[str, Any]) -> Table:
    facts = _facts()
    auth = tenant.get("auth") or {}
    facts.add_row("Tenant", f"{tenant.get('name', '')} ({tenant['id']})")
    facts.add_row("Graph", str(tenant.get("graph_base_url", "")))
    facts.add_row(
        "Auth",
        ", ".join(f"{k}: {v}" for k, v in auth.items() if v not in (None, "")) or "none",
    )
    facts.add_row("Break-glass", ", ".join(tenant.get("break_glass_ids") or []) or "none")
    for name, binding in sorted((tenant.get("bindings") or {}).items()):
        facts.add_row(f"Binding {name}", _inline(binding))
    for section in ("comms", "automation", "graph_limits"):
        if tenant.get(section):
            facts.add_row(section.replace("_", " ").capitalize(), _inline(tenant[section]))
    facts.add_row("Updated", when(tenant.get("updated_at")))
    return facts


def inventory_view(inventory: Mapping[str, Any]) -> Group:
    facts = _facts()
    facts.add_row("Inventory", f"#{inventory.get('id')} of tenant {inventory.get('tenant_id')}")
    facts.add_row("Taken", when(inventory.get("taken_at")))
    facts.add_row("Assignments", f"{inventory.get('item_count', 0)} permanent Active")
    roles = Table(title="By role", title_justify="left")
    roles.add_column("Role", overflow="fold")
    roles.add_column("Assignments", justify="right")
    for row in inventory.get("by_role") or []:
        roles.add_row(str(row.get("role_name") or row.get("role_definition_id")), str(row["count"]))
    return Group(facts, roles)


def preview_view(preview: Mapping[str, Any]) -> Group:
    parts: list[RenderableType] = []
    for phase in preview.get("phases") or []:
        changes = phase.get("changes") or []
        table = Table(
            title=f"{phase['phase']}: {phase.get('title', '')} ({len(changes)} change(s))",
            title_justify="left",
        )
        for column in ("Step", "Kind", "Role", "Subject", "Before", "After", "Note"):
            table.add_column(column, overflow="fold")
        for change in changes:
            table.add_row(
                *(
                    str(change.get(key) if change.get(key) is not None else "")
                    for key in ("step", "kind", "role", "subject", "before", "after", "note")
                )
            )
        parts.append(table)
    return Group(*parts)


def any_view(value: Any, title: str | None = None) -> RenderableType:
    """A report whose shape this client does not know: scalars as facts, lists as tables."""
    if isinstance(value, Mapping):
        facts = _facts()
        nested: list[RenderableType] = []
        for key, item in value.items():
            if isinstance(item, list) and item and all(isinstance(i, Mapping) for i in item):
                nested.append(_records(item, str(key)))
            elif isinstance(item, Mapping) and any(
                isinstance(v, (Mapping, list)) for v in item.values()
            ):
                nested.append(any_view(item, str(key)))
            else:
                facts.add_row(str(key), _inline(item))
        if title:
            facts.title = title
            facts.title_justify = "left"
        return Group(facts, *nested)
    if isinstance(value, list) and all(isinstance(i, Mapping) for i in value):
        return _records(value, title or "")
    return Text(_inline(value))


def _facts() -> Table:
    """Two columns, names in bold: the head of a view."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    return facts


def _records(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = Table(title=title or None, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_inline(row.get(column)) for column in columns))
    return table


def _inline(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ", ".join(
            f"{k}: {_inline(v)}" for k, v in value.items() if v not in (None, "", [], {})
        )
    if isinstance(value, list):
        return ", ".join(_inline(v) for v in value)
    return str(value)
