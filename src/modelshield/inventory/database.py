"""Where the inventory lives and how it is opened: URL resolution, engine, upgrade to the Alembic head."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

DB_ENVIRONMENT_VARIABLE = "MODELSHIELD_DB"
MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_REVISION = "0001"
"""The newest migration (a test holds it equal to the scripts' head): a database already there is opened
without loading Alembic at all."""


def default_database_url() -> str:
    """SQLite in the user's data directory (e.g. ~/.local/share/modelshield/inventory.db)."""
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('modelshield')) / 'inventory.db'}"


def resolve_database_url(explicit: str | None) -> str:
    """`--db`, else MODELSHIELD_DB, else the default SQLite file."""
    return explicit or os.environ.get(DB_ENVIRONMENT_VARIABLE) or default_database_url()


def create_inventory_engine(url: str, **engine_options: Any) -> Engine:
    """An engine for `url`; a SQLite file's directory is created and foreign keys are enforced."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **engine_options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(engine: Engine) -> Any:
    """An Alembic configuration for the migrations shipped in the package (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database's schema to the newest migration (creating it when empty)."""
    if stored_revision(engine) == SCHEMA_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def stored_revision(engine: Engine) -> str | None:
    """The revision recorded in the database's `alembic_version` table, read without Alembic."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return revisions[0] if len(revisions) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, None when it has none."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        revision: str | None = MigrationContext.configure(connection).get_current_revision()
        return revision
