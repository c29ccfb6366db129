"""What the API, UI, CLI and engine share: settings, sessions, secrets, Graph clients, time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.db.session import Database, SessionFactory
from app.db.shared_reads import SharedReads
from app.domain.clock import Clock
from app.services.secrets import SecretBox
from app.services.tokens import VerifiedTokens
from app.settings import Settings

if TYPE_CHECKING:
    from app.graph.factory import GraphClientFactory


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secret_box: SecretBox
    graph_factory: GraphClientFactory
    clock: Clock = field(default_factory=SystemClock)
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    shared_reads: SharedReads = field(init=False)

    def __post_init__(self) -> None:
        self.shared_reads = SharedReads(self.db)

    @property
    def session_factory(self) -> SessionFactory:
        """Plain sessions, for synchronous callers already off the event loop."""
        return self.db.factory
