"""Run the simulated tenant on a port (``pim-rollout simulate-tenant``)."""

from __future__ import annotations

import uvicorn

from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.state import SimState


def run_standalone(
    *, host: str = "127.0.0.1", port: int, state: SimState, limits: SimLimits
) -> None:
    """Serve until interrupted. Binds to loopback unless told otherwise: the control API has no
    authentication."""
    app = create_simulator_app(state, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
