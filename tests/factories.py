"""Builders and fakes shared by tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLANS_DIR = ROOT / "rollout_plans"
GA = "62e90394-69f5-4237-9190-012177145e10"
PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


def plan_data(name: str = "default", **over: Any) -> dict[str, Any]:
    """The raw YAML data of a shipped plan, with top-level fields replaced."""
    data: dict[str, Any] = yaml.safe_load((PLANS_DIR / f"{name}.yaml").read_text())
    data = copy.deepcopy(data)
    data.update(over)
    return data


def tenant_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Contoso",
        "graph_base_url": "http://contoso.test/v1.0",
        "auth": {"kind": "none"},
        "break_glass_ids": [
            "00000000-0000-4000-8000-00000000bg01".replace("bg", "0b"),
            "00000000-0000-4000-8000-0000000b0002",
        ],
        "bindings": {
            "it_platform_team": {"kind": "group", "id": "11111111-1111-4111-8111-111111111111"},
            "security_team": {"kind": "group", "id": "22222222-2222-4222-8222-222222222222"},
            "managers": {"kind": "group", "id": "33333333-3333-4333-8333-333333333333"},
            "role_owners": {
                "kind": "role_owners",
                "owners": {GA: "44444444-4444-4444-8444-444444444444"},
                "fallback": "44444444-4444-4444-8444-444444444444",
            },
            "helpdesk": {"kind": "users", "ids": ["55555555-5555-4555-8555-555555555555"]},
        },
        "comms": {
            "sender": "66666666-6666-4666-8666-666666666666",
            "helpdesk": {
                "name": "IT Service Desk",
                "email": "help@contoso.test",
                "phone": "+1 555 0100",
            },
        },
    }
    body.update(over)
    return body
