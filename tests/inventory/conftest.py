"""Test inventories: a SQLite file and a PostgreSQL schema (MODELSHIELD_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

POSTGRES_URL = os.environ.get(
    "MODELSHIELD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SESSION_PREFIX = f"modelshield_test_{uuid.uuid4().hex[:8]}"


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {reason}")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[object]:
    """An engine on the test database; every schema this session made is dropped at its end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as exc:
        engine.dispose()
        _postgres_unavailable(str(exc).splitlines()[0])
    yield engine
    with engine.begin() as connection:
        rows = connection.execute(
            text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"),
            {"p": f"{SESSION_PREFIX}%"},
        )
        for (schema,) in rows.all():
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def postgres_schema_url(admin: object) -> str:
    """A fresh schema, and a URL whose connections use it (psycopg's `options` sets the search path)."""
    from sqlalchemy import Engine, text

    assert isinstance(admin, Engine)
    schema = f"{SESSION_PREFIX}_{uuid.uuid4().hex[:8]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty inventory database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'inventory.db'}"
    return postgres_schema_url(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def inventory(database_url: str) -> Iterator[object]:
    from modelshield.inventory.store import Inventory

    opened = Inventory.open(database_url)
    yield opened
    opened.close()
