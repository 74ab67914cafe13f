"""Alembic environment: runs the inventory's migrations on the engine handed over in the configuration."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from modelshield.inventory.schema import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("the inventory migrations run through modelshield.inventory.database only")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
