"""Every row of a test database, copied out and written back into an empty one.

For fixtures that cost seconds to build (a plan driven through its pilot): the first test of a
process builds it, later ones start from the rows it left. Sequences are moved past the copied
ids on PostgreSQL, so rows the test adds get ids of their own as they would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, insert, select, text
from sqlmodel import SQLModel

from app.db.session import SessionFactory, unit_of_work


@dataclass(frozen=True)
class Rows:
    by_table: dict[str, list[dict[str, Any]]]


def copy_rows(session_factory: SessionFactory) -> Rows:
    with session_factory() as session:
        by_table = {
            table.name: [dict(row) for row in session.execute(select(table)).mappings()]
            for table in SQLModel.metadata.sorted_tables
        }
    return Rows(by_table)


def write_rows(session_factory: SessionFactory, rows: Rows) -> None:
    """Write ``rows`` into a database whose tables are empty, parents before children."""
    with unit_of_work(session_factory) as session:
        for table in SQLModel.metadata.sorted_tables:
            if session.execute(select(func.count()).select_from(table)).scalar_one():
                raise AssertionError(f"table {table.name} is not empty")
            if rows.by_table[table.name]:
                session.execute(insert(table), rows.by_table[table.name])
        if session.get_bind().dialect.name == "postgresql":
            for table in SQLModel.metadata.sorted_tables:
                if "id" in table.c and isinstance(table.c.id.type, Integer):
                    session.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                            f'COALESCE(MAX(id), 0) + 1, false) FROM "{table.name}"'
                        )
                    )
