"""The shipped Alembic migrations build exactly the schema the SQLAlchemy models describe, on each backend."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from modelshield.inventory.database import (
    MIGRATIONS,
    SCHEMA_REVISION,
    alembic_config,
    create_inventory_engine,
    current_revision,
    stored_revision,
    upgrade_to_head,
)
from modelshield.inventory.schema import Base

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

TABLES = [
    "alembic_version",
    "blobs",
    "findings",
    "gate_decisions",
    "models",
    "scans",
    "sources",
    "version_files",
    "versions",
]


def test_an_empty_database_upgrades_to_head_and_matches_the_models(database_url: str) -> None:
    engine = create_inventory_engine(database_url)
    try:
        assert current_revision(engine) is None

        upgrade_to_head(engine)

        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert head == SCHEMA_REVISION == "0001"
        assert current_revision(engine) == stored_revision(engine) == head
        assert sorted(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrading_twice_changes_nothing_and_downgrade_empties_the_database(database_url: str) -> None:
    engine = create_inventory_engine(database_url)
    try:
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        assert current_revision(engine) == "0001"

        command.downgrade(alembic_config(engine), "base")

        assert inspect(engine).get_table_names() == ["alembic_version"]
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_every_migration_is_shipped_as_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["modelshield"]
    package = MIGRATIONS.parents[1]
    shipped = {path for pattern in globs for path in package.glob(pattern)}
    migration_files = {p for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert migration_files == shipped & migration_files
    assert {p.name for p in migration_files} == {"env.py", "script.py.mako", "0001_initial.py"}
