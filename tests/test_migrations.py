"""The migrations build exactly the schema the models describe (as `alembic check` does),
on SQLite and PostgreSQL; and they go down and up again."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from storage.database import Database, alembic_config
from storage.models import Base

# The "sent once" keys are expression indexes (coalesce): SQLite's reflection cannot
# compare them (PostgreSQL's does).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_the_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await database.dispose()
    assert differences == []


async def test_the_latest_migrations_go_down_and_up_again(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_downgrade, "0003")  # back to the channels schema
        async with database.engine.connect() as connection:
            lowered = await connection.run_sync(_revision)
        await database.upgrade("head")
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await database.dispose()
    assert lowered == "0003"
    assert differences == []
