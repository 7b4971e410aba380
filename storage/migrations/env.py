"""Alembic environment: runs on the connection the application hands over.

``storage.database.Database.upgrade`` passes its connection in
``config.attributes["connection"]``; the ``alembic`` command line (for writing
new migrations) connects with ``DATABASE_URL`` from the settings instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base

target_metadata = Base.metadata


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_settings() -> None:
    from config.settings import load_settings

    engine = create_async_engine(load_settings().database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_run_on)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run_on(connection)
else:
    asyncio.run(_run_with_settings())
