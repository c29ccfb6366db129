"""A tenant whose credential gets no token: the plan waits and says why; nothing fails."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import structlog

from app.db.repos.journal import JournalRepository
from app.db.repos.work_items import WorkItemRepository
from app.db.session import unit_of_work
from app.engine.tick import tick
from app.services import tenants
from tests.engine.conftest import Rig
from tests.factories import plan_data
from tests.graph.fakes import FakeEntra

SECRET = "Zq8~Revoked.secret-value-0123456789abcdef"
ROTATED = "Zq8~Rotated.secret-value-0123456789abcdef"


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (60, 10)


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> FakeEntra:
    fake = FakeEntra().install(monkeypatch)
    fake.refused[SECRET] = "AADSTS7000215"
    return fake


def give_credential(rig: Rig, secret: str) -> None:
    """The tenant moves to a real credential on Graph (its requests still reach the simulator)."""
    with unit_of_work(rig.session_factory) as session:
        tenants.update_tenant(
            session,
            tenant_id=rig.tenant_id,
            changes={
                "graph_base_url": "https://graph.microsoft.com/v1.0",
                "auth": {
                    "kind": "client_secret",
                    "tenant_id": str(uuid.UUID(int=7)),
                    "client_id": str(uuid.UUID(int=8)),
                    "client_secret": secret,
                },
                "graph_limits": {"min_change_interval_seconds": 0, "write_quota": 100_000},
            },
            box=rig.ectx.secret_box,
            now=rig.clock.now(),
        )


def convert_everyone() -> dict[str, Any]:
    data = plan_data()
    data["name"] = "convert-everyone"
    data["phases"] = [
        {
            "key": "all-admins",
            "title": "Every admin role holder",
            "starts_after": "PT0S",
            "gate": "auto",
            "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
        }
    ]
    return data


class TestTickWithAFailingCredential:
    async def test_the_plan_waits_with_the_reason_and_resumes_once_fixed(
        self, rig: Rig, entra: FakeEntra
    ) -> None:
        plan_id = rig.create_plan(spec=convert_everyone())
        rig.act(plan_id, "start", reason="CHG-7")
        give_credential(rig, SECRET)

        with structlog.testing.capture_logs() as captured_logs:
            for _ in range(3):
                await tick(rig.ectx)
        view = rig.view(plan_id)
        (phase,) = view.phases
        assert (view.row.state, phase.row.state) == ("running", "running")
        reason = phase.row.status_reason or ""
        assert reason.startswith("tenant 'Contoso (simulated)' (")
        assert "client_secret credential cannot get a Microsoft Graph token" in reason
        assert "not its Secret ID" in reason
        assert SECRET not in reason
        # Asked once; the refusal is remembered for the ticks after it.
        assert entra.asked == [("client_secret", ("https://graph.microsoft.com/.default",))]
        with rig.session_factory() as session:
            assert list(JournalRepository(session).list_for_plan(plan_id)) == []
            assert list(WorkItemRepository(session).list_items(plan_id)) == []
        assert SECRET not in repr(captured_logs)
        assert any(e["event"] == "engine.tenant_credential_failed" for e in captured_logs)

        give_credential(rig, ROTATED)
        await tick(rig.ectx)
        view = rig.view(plan_id)
        assert view.row.state == "completed", [p.row.status_reason for p in view.phases]
        assert view.phases[0].progress.done > 0

    async def test_a_sign_in_endpoint_out_of_reach_fails_nothing(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from azure.core.exceptions import ServiceRequestError
        from azure.identity.aio import ClientSecretCredential

        async def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ServiceRequestError("Cannot connect to host login.microsoftonline.com:443")

        monkeypatch.setattr(ClientSecretCredential, "get_token", unreachable)
        plan_id = rig.create_plan(spec=convert_everyone())
        rig.act(plan_id, "start", reason="CHG-8")
        give_credential(rig, ROTATED)
        for _ in range(3):
            await tick(rig.ectx)
        view = rig.view(plan_id)
        (phase,) = view.phases
        assert (view.row.state, phase.row.state) == ("running", "running")
        assert (phase.row.status_reason or "").startswith("waiting for Microsoft Graph")
