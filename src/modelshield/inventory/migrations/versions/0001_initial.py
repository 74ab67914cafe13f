"""Initial inventory schema: sources, models, versions, blobs, version files, scans, findings, gate decisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _fk(column: str, table: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=2048), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("address", name=op.f("uq_sources_address")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        _fk("source_id", "models", "sources.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("source_id", "name", name=op.f("uq_models_source_id")),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=256), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=64), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("gate_status", sa.String(length=16), nullable=False),
        sa.Column("known_safe", sa.Boolean(), nullable=False),
        sa.Column("known_safe_at", sa.DateTime(timezone=True), nullable=True),
        _fk("model_id", "versions", "models.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_versions_model_id")),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("tool_version", sa.String(length=64), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("fully_scanned", sa.Boolean(), nullable=False),
        sa.Column("issues", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(blob_sha256 IS NULL) <> (version_id IS NULL)", name=op.f("ck_scans_blob_or_version")
        ),
        _fk("blob_sha256", "scans", "blobs.sha256"),
        _fk("version_id", "scans", "versions.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    op.create_index("ix_scans_blob_key", "scans", ["blob_sha256", "tool_version", "policy_hash"])
    op.create_index("ix_scans_version_key", "scans", ["version_id", "tool_version", "policy_hash"])
    op.create_table(
        "version_files",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        _fk("blob_sha256", "version_files", "blobs.sha256"),
        _fk("version_id", "version_files", "versions.id", "CASCADE"),
        sa.PrimaryKeyConstraint("version_id", "path", name=op.f("pk_version_files")),
    )
    op.create_index(op.f("ix_version_files_blob_sha256"), "version_files", ["blob_sha256"])
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        _fk("scan_id", "findings", "scans.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index(op.f("ix_findings_fingerprint"), "findings", ["fingerprint"])
    op.create_index(op.f("ix_findings_scan_id"), "findings", ["scan_id"])
    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _fk("scan_id", "gate_decisions", "scans.id", "SET NULL"),
        _fk("version_id", "gate_decisions", "versions.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_decisions")),
    )
    op.create_index(op.f("ix_gate_decisions_version_id"), "gate_decisions", ["version_id"])


def downgrade() -> None:
    for table in ("gate_decisions", "findings", "version_files", "scans", "versions", "models", "sources"):
        op.drop_table(table)
    op.drop_table("blobs")
