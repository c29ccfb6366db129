"""A worker process for the invariant tests: ticks one database against a standalone tenant.

Run as ``python -m tests.invariants.worker DB_URL WORKER_ID SECONDS``; it ticks until killed or
until SECONDS pass. The tests kill it with SIGKILL at random points and start it again.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from cryptography.fernet import Fernet

from app.db.session import Database, create_db_engine, create_session_factory
from app.engine.context import EngineContext
from app.engine.tick import tick
from app.graph.factory import GraphClientFactory
from app.logging import configure_logging
from app.services.context import SystemClock
from app.services.secrets import SecretBox
from app.settings import GraphSettings

# Tenants in these tests use auth "none": nothing is encrypted, any key will do.
_BOX = SecretBox(Fernet.generate_key())


async def main(url: str, worker_id: str, seconds: float) -> None:
    # A stalled worker's session ends after 5 s idle in a transaction (15 s in production), so
    # the takeover the tests wait for comes soon after the 4 s lease lapses.
    engine = create_db_engine(url, idle_in_transaction_timeout_s=5)
    factory = GraphClientFactory(
        GraphSettings(request_timeout_seconds=3, total_deadline_seconds=30, max_attempts=8)
    )
    ectx = EngineContext(
        db=Database(create_session_factory(engine)),
        graph_factory=factory,
        secret_box=_BOX,
        clock=SystemClock(),
        worker_id=worker_id,
        lease_ttl=timedelta(seconds=4),
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            await tick(ectx)
            await asyncio.sleep(0.1)
    finally:
        await factory.aclose_all()
        engine.dispose()


if __name__ == "__main__":
    configure_logging("WARNING")
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
