"""One-shot messages carried in the session from a POST to the page it redirects to.

The session lives in a signed cookie (about 4 KB at most), so messages are trimmed.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["success", "info", "warning", "error"]
_KEY = "flash"
_MAX_TEXT = 300
_MAX_ITEMS = 12


@dataclass(frozen=True)
class Flash:
    level: Level
    title: str
    detail: str | None = None
    items: list[str] = field(default_factory=list)


def _trim(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def add(
    session: MutableMapping[str, Any],
    level: Level,
    title: str,
    detail: str | None = None,
    items: Iterable[str] = (),
) -> None:
    listed = [_trim(i) for i in items]
    if len(listed) > _MAX_ITEMS:
        hidden = len(listed) - _MAX_ITEMS
        listed = [*listed[:_MAX_ITEMS], f"… and {hidden} more"]
    message = Flash(level, _trim(title), _trim(detail) if detail else None, listed)
    session[_KEY] = [*session.get(_KEY, []), asdict(message)]


def pop_all(session: MutableMapping[str, Any]) -> list[Flash]:
    if _KEY not in session:
        return []
    raw = session.pop(_KEY) or []
    return [
        Flash(m["level"], m["title"], m.get("detail"), list(m.get("items") or []))
        for m in raw
        if isinstance(m, dict)
    ]
