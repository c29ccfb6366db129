"""Numbers requests may carry, bounded so that none reaches the database out of its range.

SQLite stores 64-bit integers and PostgreSQL's ``integer`` ids are 32-bit: an unbounded
``offset`` or id from a request would make the driver raise (a 500) instead of a 422.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**31 - 1
"""The largest integer id or version a request may name (a PostgreSQL ``integer``)."""
MAX_OFFSET = 1_000_000_000

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="how many rows to skip")]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]
