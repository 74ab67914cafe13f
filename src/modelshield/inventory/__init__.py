"""The model inventory: sources, models, versions, content-addressed files and their scans, in SQL.

Needs the `inventory` extra (SQLAlchemy, Alembic, platformdirs); nothing in the scanning core imports it.
"""
