"""Run Alembic from code, so ``pim-rollout migrate`` and the tests need no alembic.ini."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """The Alembic scripts, shipped inside the package (``app/migrations``)."""
    folder = resources.files("app") / "migrations"
    # Alembic reads the scripts from a real folder, which an installed package always has.
    if not isinstance(folder, Path) or not (folder / "env.py").is_file():
        raise FileNotFoundError(f"the package's migrations are missing ({folder})")
    return folder


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option(
        "file_template", "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
