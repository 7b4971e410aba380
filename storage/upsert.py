"""INSERT … ON CONFLICT in the session's dialect.

Both bundled databases have it, each through its own SQLAlchemy construct
(``sqlalchemy.dialects.postgresql.insert`` / ``sqlalchemy.dialects.sqlite.insert``);
this is the one place that picks between them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def conflict_insert(session: AsyncSession, target: Any) -> Any:
    """``INSERT INTO target`` with ``on_conflict_do_nothing``, ``on_conflict_do_update``
    and ``excluded``, for the database ``session`` is bound to (SQLite when unbound).

    Typed ``Any``: the two dialects' constructs share these methods but no type.
    """
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(target)
