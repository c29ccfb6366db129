"""Shared model plumbing: Graph's camelCase aliases, tolerant parsing, case-insensitive enums."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

JsonObject = dict[str, JsonValue]
ODATA_TYPE = "@odata.type"
ODATA_CONTEXT = "@odata.context"


_CAMEL_CASE = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,  # populate_by_name, as pydantic >= 2.11 spells it
    validate_by_alias=True,
    serialize_by_alias=True,
)


class GraphEnum(StrEnum):
    """A Graph enum: members are snake_case, values are Graph's camelCase strings.

    Lookup ignores case (reference §2.5: docs send ``"NoExpiration"``, Graph echoes
    ``"noExpiration"``), so ``ExpirationType("AfterDuration") is ExpirationType.after_duration``.
    """

    @classmethod
    def _missing_(cls, value: object) -> GraphEnum | None:
        if isinstance(value, str):
            folded = value.casefold()
            for member in cls:
                if member.value.casefold() == folded:
                    return member
        return None


def same_text(left: str | None, right: str) -> bool:
    """Case-insensitive comparison for Graph's plain-string enums (``status``, ``memberType``…)."""
    return left is not None and left.casefold() == right.casefold()


class GraphModel(BaseModel):
    """A Graph resource as read: camelCase aliases, unknown properties kept for round-trips."""

    model_config = ConfigDict(**_CAMEL_CASE, extra="allow")

    def to_graph(self) -> JsonObject:
        """The JSON body Graph expects: camelCase, only properties that were read or set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class GraphInput(BaseModel):
    """A request body we compose: camelCase on the wire, unknown names refused, ``None`` omitted."""

    model_config = ConfigDict(**_CAMEL_CASE, extra="forbid")

    def to_graph(self) -> JsonObject:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TypedGraphModel(GraphModel):
    """A Graph object whose ``@odata.type`` selects its subtype: the type is always sent.

    Subclasses give ``odata_type`` a default; it counts as "set" even when the object was built
    in code, so ``to_graph()`` (which drops unset properties) never loses it.
    """

    odata_type: str = Field(alias=ODATA_TYPE)

    @model_validator(mode="after")
    def _odata_type_is_always_sent(self) -> Any:
        self.model_fields_set.add("odata_type")
        return self


def format_iso_duration(value: timedelta) -> str:
    """ISO-8601 duration in days/hours/minutes/seconds, as PIM uses it (``P365D``, ``PT1H45M``).

    pydantic would write 365 days as ``P1Y``; PIM examples and policies always count days.
    """
    if value < timedelta(0):
        raise ValueError("durations sent to Graph must not be negative")
    days = value.days
    seconds = value.seconds
    micro = value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "")
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if secs or micro:
        time_part += f"{secs}.{micro:06d}".rstrip("0").rstrip(".") + "S"
    if time_part:
        text += "T" + time_part
    return text if text != "P" else "PT0S"


IsoDuration = Annotated[timedelta, PlainSerializer(format_iso_duration, return_type=str)]
"""A ``timedelta`` read from and written to Graph as an ISO-8601 duration."""


class Identity(GraphModel):
    id: str | None = None
    display_name: str | None = None


class IdentitySet(GraphModel):
    user: Identity | None = None
    application: Identity | None = None
    device: Identity | None = None


class CollectionPage(GraphModel):
    """One page of a Graph collection: ``value`` plus ``@odata.nextLink`` when there is more."""

    value: list[JsonObject] = Field(default_factory=list)
    next_link: str | None = Field(default=None, alias="@odata.nextLink")
