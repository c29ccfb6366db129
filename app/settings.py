"""Service settings, read from ``PIM_ROLLOUT_*`` environment variables.

Nothing is built at import time: ``load_settings()`` is called by the CLI and the app factory
receives the result, so tests construct ``Settings(...)`` directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PIM_ROLLOUT_"
# The HTTP commands' own variables (``pim-rollout plans …``): not settings of the service, and
# not refused as unknown, so a shell that exports them can still run ``serve``.
CLIENT_VARIABLES = frozenset({"PIM_ROLLOUT_SERVER", "PIM_ROLLOUT_TOKEN"})
NESTED_DELIMITER = "__"


class LogFormat(StrEnum):
    json = "json"
    console = "console"


class LogLevel(StrEnum):
    debug = "DEBUG"
    info = "INFO"
    warning = "WARNING"
    error = "ERROR"


class GraphSettings(BaseModel):
    """Defaults for every tenant's Graph client; a tenant may narrow them."""

    max_concurrency: int = Field(default=8, ge=1, le=64)
    max_attempts: int = Field(default=6, ge=1, le=20)
    total_deadline_seconds: float = Field(default=120.0, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    backoff_base_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=30.0, gt=0)


class SchedulerSettings(BaseModel):
    enabled: bool = True
    tick_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="on shutdown, engine work this long in flight may finish its current item",
    )


class MonitoringSettings(BaseModel):
    """Collection of PIM activity after rollout, and the thresholds its signals are read with."""

    enabled: bool = True
    collect_seconds: float = Field(default=300.0, gt=0, description="collection interval")
    max_data_age_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a health gate collects afresh when the last collection is older than this",
    )
    history_days: int = Field(
        default=30, ge=1, le=366, description="how far back the first collection of a tenant reads"
    )
    audit_overlap_seconds: float = Field(
        default=300.0,
        ge=0,
        description="audit records arrive late; each run re-reads this much before its cursor",
    )
    full_read_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="requests and standing assignments are read in full at least this often; "
        "in between, only those of principals the new audit records name",
    )
    incremental_max_principals: int = Field(
        default=50,
        ge=0,
        description="more principals named by new audit records than this: read everything",
    )
    min_justification_length: int = Field(default=10, ge=0, le=200)
    smelly_justifications: list[str] = Field(
        default_factory=lambda: [
            "doing my job",
            "my job",
            "admin work",
            "admin",
            "work",
            "needed",
            "fix",
            "maintenance",
            "as needed",
            "test",
            "n/a",
            "asdf",
        ],
        description="whole justifications that say nothing (compared without case or spacing)",
    )
    at_max_attention_share: float = Field(
        default=0.5, gt=0, le=1, description="share of activations at the maximum worth a reading"
    )
    renewal_gap_minutes: int = Field(default=30, ge=1, le=24 * 60)
    renewal_share_for_tight: float = Field(
        default=0.25, gt=0, le=1, description="renewed share of max-length activations: too tight"
    )
    min_activations_for_reading: int = Field(default=5, ge=1)
    spike_factor: float = Field(default=2.0, gt=1)
    spike_min_count: int = Field(default=3, ge=1)
    baseline_weeks: int = Field(default=4, ge=1, le=52)

    @field_validator("smelly_justifications", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """From the environment: a JSON list, or phrases separated by ``;``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(";") if part.strip()]
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    database_url: str = "sqlite:///./pim-rollout.db"
    database_threads: int = Field(default=10, ge=1, le=200)
    """Worker threads that run database work (and sync request handlers); the pool matches it."""
    loop_watchdog_ms: float = Field(default=0, ge=0)
    """Log any event-loop callback that blocks longer than this, with its stack (0: off)."""
    plans_dir: Path | None = None
    """A folder of plan templates added to the packaged ones; a file there replaces the
    packaged template of the same name."""
    log_level: LogLevel = LogLevel.info
    log_format: LogFormat = LogFormat.console
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path("pim-rollout.key")
    worker_id: str = ""
    public_url: str = "http://127.0.0.1:8000"
    job_wait_seconds: float = Field(default=2.0, ge=0, le=600)
    """How long a request waits for its job (start, dry run, inventory, collection) before it
    answers that the job carries on: the API's answer without ``Prefer``, and the UI's."""
    graph: GraphSettings = GraphSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            raise ValueError(
                "must start with sqlite:// or postgresql+psycopg:// "
                "(for example sqlite:///./pim-rollout.db)"
            )
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("plans_dir")
    @classmethod
    def _existing_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(
                f"{str(value)!r} is not a folder (it names a folder of plan templates added "
                "to the packaged ones; leave it unset to use those alone)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class SettingsError(Exception):
    """A setting is unknown or malformed; the message names the variable."""


def _known_variables() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(ENV_PREFIX + name.upper())
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                names.add(f"{ENV_PREFIX}{name.upper()}{NESTED_DELIMITER}{sub.upper()}")
    return names


def _variable_for(location: tuple[int | str, ...]) -> str:
    parts = [str(part).upper() for part in location if isinstance(part, str)]
    return ENV_PREFIX + NESTED_DELIMITER.join(parts)


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("secret", "password", "token", "key"))


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment, refusing unknown and malformed variables by name."""
    env = os.environ if environ is None else environ
    known = _known_variables()
    unknown = sorted(
        key
        for key in env
        if key.upper().startswith(ENV_PREFIX)
        and key.upper() not in known
        and key.upper() not in CLIENT_VARIABLES
    )
    if unknown:
        raise SettingsError(
            "unknown setting(s): "
            + ", ".join(unknown)
            + "; known settings: "
            + ", ".join(sorted(known))
        )
    values: dict[str, Any] = {}
    for key, raw in env.items():
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in CLIENT_VARIABLES:
            continue
        path = upper.removeprefix(ENV_PREFIX).lower().split(NESTED_DELIMITER.lower())
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = raw
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = _variable_for(error["loc"])
            shown = "" if _looks_secret(variable) else f" (got {error.get('input')!r})"
            problems.append(f"{variable}: {error['msg']}{shown}")
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None
