from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.db.session import SessionFactory
from tests.monitoring_rig import MonitoringRig, monitoring_plan, piloted_rig


@pytest.fixture
async def rig(session_factory: SessionFactory) -> AsyncIterator[MonitoringRig]:
    """A tenant whose pilot (IT/platform team) was converted at T0 by a started plan."""
    async with piloted_rig(session_factory, monitoring_plan()) as built:
        yield built
