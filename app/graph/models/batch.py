"""JSON ``$batch`` items (reference §2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import Field, JsonValue, field_validator, model_validator

from app.graph.errors import GraphError
from app.graph.models._base import GraphInput, JsonObject

MAX_BATCH_ITEMS = 20
READ_METHODS = frozenset({"GET", "HEAD"})


class BatchRequest(GraphInput):
    """One request inside a ``$batch``; ``url`` is relative to the version (``/roleManagement/…``).

    ``idempotent`` is ours, not Graph's: it marks a POST that only reads (``getByIds``) so a lost
    answer may be re-sent. It is never sent to Graph.
    """

    id: str = Field(min_length=1)
    method: str
    url: str = Field(min_length=1)
    headers: dict[str, str] | None = None
    body: JsonValue = None
    depends_on: list[str] | None = None
    idempotent: bool | None = Field(default=None, exclude=True)

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def is_write(self) -> bool:
        return self.method not in READ_METHODS

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in READ_METHODS or self.method == "DELETE"

    def to_graph(self) -> JsonObject:
        """The item as sent: a body always travels with ``Content-Type: application/json``."""
        item = super().to_graph()
        if self.body is not None:
            headers = dict(self.headers or {})
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
            item["headers"] = dict(headers)
        return item


class BatchRequestBody(GraphInput):
    """The ``$batch`` envelope: at most 20 items with unique ids."""

    requests: list[BatchRequest] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)

    @model_validator(mode="after")
    def _unique_ids(self) -> BatchRequestBody:
        ids = [item.id for item in self.requests]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        return self


@dataclass(frozen=True)
class BatchResponse:
    """The answer to one batch item; ``error`` is set (typed, not raised) when it failed."""

    id: str
    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: JsonValue = None
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def json_object(self) -> JsonObject:
        """The body as a JSON object (empty for 204 and non-JSON bodies)."""
        return self.body if isinstance(self.body, dict) else {}
