"""The inventory's tables as SQLAlchemy 2 typed models; the Alembic migrations must build exactly these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit constraint names: Alembic can then alter them on every backend, SQLite included.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

GATE_UNKNOWN = "unknown"
GATE_OK = "pass"
GATE_FAIL = "fail"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Source(Base):
    """A registry (or local folder, or S3 prefix) whose models the inventory follows."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(2048), unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    models: Mapped[list[Model]] = relationship(back_populates="source", cascade="all, delete-orphan")


class Model(Base):
    """One named model within a source."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("source_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))

    source: Mapped[Source] = relationship(back_populates="models")
    versions: Mapped[list[Version]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="Version.id"
    )


class Version(Base):
    """One exact version of a model, with its gate status."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(256))
    address: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """As the registry records it (ISO 8601), None when it does not."""
    discovered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    labels: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of the registry's other names for this version (branches, tags, aliases)."""
    gate_status: Mapped[str] = mapped_column(String(16), default=GATE_UNKNOWN)
    known_safe: Mapped[bool] = mapped_column(Boolean, default=False)
    known_safe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    model: Mapped[Model] = relationship(back_populates="versions")
    files: Mapped[list[VersionFile]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="VersionFile.path"
    )


class Blob(Base):
    """File content, addressed by its SHA-256: the same bytes in two models are one blob."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)


class VersionFile(Base):
    """A file of a version: its path relative to the version's root and its content."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)

    version: Mapped[Version] = relationship(back_populates="files")
    blob: Mapped[Blob] = relationship()


class Scan(Base):
    """A scan of one blob (with its findings) or of one version (the verdict over its blobs' scans)."""

    __tablename__ = "scans"
    __table_args__ = (
        CheckConstraint("(blob_sha256 IS NULL) <> (version_id IS NULL)", name="blob_or_version"),
        Index("ix_scans_blob_key", "blob_sha256", "tool_version", "policy_hash"),
        Index("ix_scans_version_key", "version_id", "tool_version", "policy_hash"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), nullable=True
    )
    tool_version: Mapped[str] = mapped_column(String(64))
    policy_hash: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    fully_scanned: Mapped[bool] = mapped_column(Boolean)
    issues: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of why parts were not scanned (blob scans) or of the blobs' issues (version scans)."""
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Set on a version scan when the version could not be listed or downloaded at all."""

    findings: Mapped[list[StoredFinding]] = relationship(
        back_populates="scan", cascade="all, delete-orphan", order_by="StoredFinding.id"
    )


class StoredFinding(Base):
    """A finding of a blob scan; `fingerprint` names the same problem across scans."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    suppressed: Mapped[bool] = mapped_column(Boolean)

    scan: Mapped[Scan] = relationship(back_populates="findings")


class GateDecision(Base):
    """One run of `modelshield gate` on a version: what it judged and why."""

    __tablename__ = "gate_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    scan_id: Mapped[str | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    passed: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[str] = mapped_column(String(16))
    policy_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
