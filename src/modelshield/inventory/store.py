"""Opening the inventory and the lookups every command shares: sources, models, versions, latest scans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from modelshield.errors import UsageError
from modelshield.inventory.database import create_inventory_engine, resolve_database_url, upgrade_to_head
from modelshield.inventory.schema import Blob, Model, Scan, Source, StoredFinding, Version, VersionFile


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time the inventory writes is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ScanKey:
    """What makes a stored scan reusable: the same scanner and the same effective policy."""

    tool_version: str
    policy_hash: str


class Inventory:
    """An open inventory database, upgraded to the newest schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None) -> Inventory:
        """Open `url` (else MODELSHIELD_DB, else the user's default SQLite file) and migrate it to head."""
        engine = create_inventory_engine(resolve_database_url(url))
        upgrade_to_head(engine)
        return cls(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def find_source(session: Session, address: str) -> Source | None:
    return session.scalars(select(Source).where(Source.address == address)).one_or_none()


def find_model(session: Session, name: str, source: str | None = None) -> Model:
    """The model called `name` (in `source` when given); UsageError when none or several match."""
    query = select(Model).join(Source).where(Model.name == name)
    if source is not None:
        query = query.where(Source.address == source)
    models = list(session.scalars(query.order_by(Source.address)))
    if not models:
        where = f" in {source}" if source else ""
        raise UsageError(f"unknown model {name!r}{where}; see `modelshield inventory list`")
    if len(models) > 1:
        sources = ", ".join(model.source.address for model in models)
        raise UsageError(f"model {name!r} is in several sources ({sources}); choose one with --source")
    return models[0]


def find_version(model: Model, wanted: str) -> Version:
    """A version by its exact id, a label the registry gives it, an unambiguous id prefix, or `latest`
    (the newest version the inventory knows, unless a version or label has that name)."""
    exact = [v for v in model.versions if v.version == wanted]
    if exact:
        return exact[0]
    labelled = [v for v in model.versions if wanted in json.loads(v.labels)]
    if len(labelled) == 1:
        return labelled[0]
    prefixed = [v for v in model.versions if v.version.startswith(wanted)] if len(wanted) >= 4 else []
    if len(prefixed) == 1:
        return prefixed[0]
    if wanted == "latest" and not labelled and model.versions:
        return model.versions[-1]
    if len(prefixed) > 1 or len(labelled) > 1:
        raise UsageError(f"{wanted!r} names several versions of {model.name!r}; give more of the id")
    raise UsageError(f"unknown version {wanted!r} of model {model.name!r}; see `modelshield inventory show`")


def last_known_safe(model: Model) -> Version | None:
    """The version most recently recorded as safe by a passing gate."""
    safe = [v for v in model.versions if v.known_safe and v.known_safe_at is not None]
    return max(safe, key=lambda v: (as_utc(v.known_safe_at), v.id), default=None)


def latest_version_scan(session: Session, version: Version, policy_hash: str | None = None) -> Scan | None:
    """The newest scan of a version (under one policy when `policy_hash` is given)."""
    query = select(Scan).where(Scan.version_id == version.id)
    if policy_hash is not None:
        query = query.where(Scan.policy_hash == policy_hash)
    return session.scalars(query.order_by(Scan.started_at.desc(), Scan.id.desc()).limit(1)).first()


def blob_scan(session: Session, sha256: str, key: ScanKey) -> Scan | None:
    """The newest scan of a blob under `key`, None when the blob was never scanned so."""
    query = (
        select(Scan)
        .where(
            Scan.blob_sha256 == sha256,
            Scan.tool_version == key.tool_version,
            Scan.policy_hash == key.policy_hash,
        )
        .order_by(Scan.started_at.desc(), Scan.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


@dataclass(frozen=True)
class VersionFinding:
    """A stored finding with the path of the version's file it was found in."""

    path: str
    finding: StoredFinding


def version_findings(session: Session, version: Version, key: ScanKey) -> list[VersionFinding]:
    """Every finding of the version's files under `key`, file by file, in path order."""
    out: list[VersionFinding] = []
    for file in version.files:
        scan = blob_scan(session, file.blob_sha256, key)
        if scan is not None:
            out.extend(VersionFinding(file.path, finding) for finding in scan.findings)
    return out


def ensure_blob(session: Session, sha256: str, size: int) -> Blob:
    blob = session.get(Blob, sha256)
    if blob is None:
        blob = Blob(sha256=sha256, size=size)
        session.add(blob)
        session.flush()
    return blob


def replace_files(session: Session, version: Version, files: dict[str, tuple[str, int]]) -> None:
    """Record the version's files (relative path → (sha256, size)), replacing any earlier listing."""
    current = {f.path: f.blob_sha256 for f in version.files}
    wanted = {path: sha for path, (sha, _) in files.items()}
    if current == wanted:
        return
    version.files.clear()
    session.flush()
    for path, (sha256, size) in sorted(files.items()):
        ensure_blob(session, sha256, size)
        version.files.append(VersionFile(path=path, blob_sha256=sha256))
