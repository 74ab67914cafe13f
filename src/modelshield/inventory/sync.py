"""Sync: walk every registered source, scan what is new (each blob once per scanner and policy), store
the results, and write the verdict back to the registry where it can hold one."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelshield.connectors import Connector, ConnectorSettings, DownloadBudget, VersionRef, connector_for
from modelshield.engine.findings import Location, Verdict, worst_verdict
from modelshield.engine.limits import DEFAULT_LIMITS, Limits
from modelshield.engine.result import FileResult
from modelshield.errors import ModelShieldError
from modelshield.inventory.fingerprints import fingerprint_of, scan_settings_hash
from modelshield.inventory.gate import judge_scan
from modelshield.inventory.schema import Model, Scan, Source, StoredFinding, Version
from modelshield.inventory.store import (
    Inventory,
    ScanKey,
    blob_scan,
    ensure_blob,
    replace_files,
    utcnow,
)
from modelshield.policy.model import Policy

_HASH_CHUNK = 1024 * 1024

STATUS_SCANNED = "scanned"
"""Files were downloaded and at least one blob was scanned."""
STATUS_REUSED = "reused"
"""A new version (or one never judged under this policy) whose every blob already had a scan."""
STATUS_UNCHANGED = "unchanged"
"""Already judged under this scanner and policy: nothing was listed, downloaded or scanned."""
STATUS_ERROR = "error"
"""The version could not be listed, downloaded or scanned; recorded with an error verdict."""


@dataclass(frozen=True)
class VersionOutcome:
    """What sync did with one version."""

    source: str
    model: str
    version: str
    status: str
    verdict: str | None = None
    scan_id: str | None = None
    scanned_blobs: tuple[str, ...] = ()
    reused_blobs: tuple[str, ...] = ()
    error: str | None = None
    verdict_written: bool | None = None
    """True when the registry took the tags, False when it has nowhere for them, None when not tried."""


@dataclass(frozen=True)
class SyncReport:
    outcomes: tuple[VersionOutcome, ...]
    source_errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def scanned_blobs(self) -> tuple[str, ...]:
        return tuple(sha for outcome in self.outcomes for sha in outcome.scanned_blobs)

    @property
    def reused_blobs(self) -> tuple[str, ...]:
        return tuple(sha for outcome in self.outcomes for sha in outcome.reused_blobs)

    @property
    def failed(self) -> bool:
        return bool(self.source_errors) or any(o.status == STATUS_ERROR for o in self.outcomes)


@dataclass(frozen=True)
class SyncOptions:
    policy: Policy = field(default_factory=Policy)
    limits: Limits = DEFAULT_LIMITS
    jobs: int = 1
    """Files scanned at once (each in a worker process when more than 1)."""
    budget: DownloadBudget = field(default_factory=DownloadBudget)
    settings: ConnectorSettings | None = None
    sources: tuple[str, ...] = ()
    """Only these source addresses (all registered sources when empty)."""


def sync_inventory(
    inventory: Inventory,
    options: SyncOptions,
    on_version: Callable[[VersionOutcome], None] | None = None,
) -> SyncReport:
    """Sync every registered source (or those in `options.sources`)."""
    from modelshield import __version__

    key = ScanKey(__version__, scan_settings_hash(options.policy, options.limits))
    settings = options.settings or ConnectorSettings.from_environment()
    outcomes: list[VersionOutcome] = []
    source_errors: list[str] = []
    warnings: list[str] = []
    with inventory.session() as session:
        query = select(Source).order_by(Source.id)
        if options.sources:
            query = query.where(Source.address.in_(options.sources))
        sources = list(session.scalars(query))
        for source in sources:
            syncer = _SourceSync(session, source, key, options, settings, source_errors, warnings)
            try:
                for outcome in syncer.run():
                    outcomes.append(outcome)
                    if on_version is not None:
                        on_version(outcome)
            except Exception as exc:  # a registry that cannot be listed must not stop the others
                session.rollback()
                source_errors.append(f"{source.address}: {_describe(exc)}")
    return SyncReport(tuple(outcomes), tuple(source_errors), tuple(warnings))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ModelShieldError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _LocalFile:
    relative: str
    path: Path
    size: int
    sha256: str


class _SourceSync:
    def __init__(
        self,
        session: Session,
        source: Source,
        key: ScanKey,
        options: SyncOptions,
        settings: ConnectorSettings,
        errors: list[str],
        warnings: list[str],
    ) -> None:
        self.session = session
        self.source = source
        self.key = key
        self.options = options
        self.settings = settings
        self.errors = errors
        self.warnings = warnings

    def run(self) -> Iterator[VersionOutcome]:
        connector = connector_for(self.source.address, self.settings)
        for name in list(connector.list_models()):
            try:
                refs = list(connector.list_versions(name))
            except Exception as exc:  # one model that cannot be listed must not hide the others
                self.errors.append(f"{self.source.address}: {name}: {_describe(exc)}")
                continue
            model = self._model(name)
            for ref in refs:
                yield self._sync_version(connector, model, ref)

    def _model(self, name: str) -> Model:
        model = self.session.scalars(
            select(Model).where(Model.source_id == self.source.id, Model.name == name)
        ).one_or_none()
        if model is None:
            model = Model(source_id=self.source.id, name=name)
            self.session.add(model)
            self.session.commit()
        return model

    def _version(self, model: Model, ref: VersionRef) -> Version:
        version = self.session.scalars(
            select(Version).where(Version.model_id == model.id, Version.version == ref.version)
        ).one_or_none()
        labels = json.dumps(list(ref.labels))
        if version is None:
            version = Version(
                model_id=model.id,
                version=ref.version,
                address=ref.address,
                origin=ref.origin,
                created_at=ref.created_at,
                discovered_at=utcnow(),
                labels=labels,
            )
            self.session.add(version)
        else:
            version.labels = labels  # aliases and tags move between versions
        self.session.commit()
        return version

    def _judged(self, version: Version) -> bool:
        scans = self.session.scalars(
            select(Scan).where(
                Scan.version_id == version.id,
                Scan.tool_version == self.key.tool_version,
                Scan.policy_hash == self.key.policy_hash,
                Scan.error.is_(None),
            )
        )
        return scans.first() is not None

    def _sync_version(self, connector: Connector, model: Model, ref: VersionRef) -> VersionOutcome:
        version = self._version(model, ref)
        base = VersionOutcome(self.source.address, model.name, ref.version, STATUS_UNCHANGED)
        if self._judged(version):
            return base
        started_at, started = utcnow(), time.monotonic()
        try:
            files, scanned = self._acquire(connector, ref)
            scan = self._store(version, files, scanned, started_at, started)
        except Exception as exc:  # one version's failure is its error verdict; sync goes on
            self.session.rollback()
            error = _describe(exc)
            scan = self._version_scan(version, started_at, started, Verdict.ERROR, False, [], error)
            self.session.commit()
            outcome = replace(
                base, status=STATUS_ERROR, verdict=Verdict.ERROR.value, scan_id=scan.id, error=error
            )
            return self._write_back(connector, ref, version, scan, outcome)
        outcome = replace(
            base,
            status=STATUS_SCANNED if scanned else STATUS_REUSED,
            verdict=scan.verdict,
            scan_id=scan.id,
            scanned_blobs=tuple(sorted(scanned)),
            reused_blobs=tuple(sorted({sha for sha, _ in files.values()} - set(scanned))),
        )
        return self._write_back(connector, ref, version, scan, outcome)

    def _store(
        self,
        version: Version,
        files: dict[str, tuple[str, int]],
        scanned: dict[str, FileResult],
        started_at: datetime,
        started: float,
    ) -> Scan:
        """Store the new blob scans, the version's files and the version's scan over its blobs."""
        for sha256, result in scanned.items():
            self._store_blob_scan(sha256, result)
        replace_files(self.session, version, files)
        self.session.flush()
        blob_scans = {sha: blob_scan(self.session, sha, self.key) for sha, _ in files.values()}
        verdicts = [Verdict(scan.verdict) for scan in blob_scans.values() if scan is not None]
        issues = [
            f"{path}: {issue}"
            for path, (sha, _) in sorted(files.items())
            if (found := blob_scans[sha]) is not None
            for issue in json.loads(found.issues)
        ]
        if not files:
            issues.append("the version has no files")
        complete = bool(files) and all(s is not None and s.fully_scanned for s in blob_scans.values())
        verdict = worst_verdict(verdicts + ([] if complete else [Verdict.ERROR]))
        scan = self._version_scan(version, started_at, started, verdict, complete, issues, None)
        self.session.commit()
        return scan

    def _acquire(
        self, connector: Connector, ref: VersionRef
    ) -> tuple[dict[str, tuple[str, int]], dict[str, FileResult]]:
        """The version's files (path → (sha256, size)) and the scans of blobs not scanned before."""
        listed = connector.list_files(ref)
        if listed and all(
            f.sha256 is not None and blob_scan(self.session, f.sha256, self.key) is not None for f in listed
        ):
            return {f.path: (f.sha256 or "", f.size or 0) for f in listed}, {}
        self.session.commit()  # no transaction held open while a large download runs
        workdir = Path(tempfile.mkdtemp(prefix="modelshield-sync-"))
        try:
            root = connector.download(ref, workdir / "files", self.options.budget)
            local = _local_files(root)
            pending: dict[str, _LocalFile] = {}
            for file in local:
                if file.sha256 not in pending and blob_scan(self.session, file.sha256, self.key) is None:
                    pending[file.sha256] = file
            scanned = self._scan(list(pending.values()))
            return {f.relative: (f.sha256, f.size) for f in local}, scanned
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _scan(self, files: list[_LocalFile]) -> dict[str, FileResult]:
        if not files:
            return {}
        from modelshield.engine.scanner import FileTarget, ScanOptions, scan_paths

        targets = [FileTarget(file.path, file.relative) for file in files]
        scan_options = ScanOptions(
            compute_hash=False, limits=self.options.limits, jobs=self.options.jobs, hash_cache=False
        )
        result = scan_paths([], self.options.policy, scan_options, targets=targets)
        return {file.sha256: file_result for file, file_result in zip(files, result.files, strict=True)}

    def _store_blob_scan(self, sha256: str, result: FileResult) -> None:
        ensure_blob(self.session, sha256, result.size)
        scan = Scan(
            id=uuid.uuid4().hex,
            blob_sha256=sha256,
            tool_version=self.key.tool_version,
            policy_hash=self.key.policy_hash,
            started_at=utcnow(),
            duration_seconds=result.duration_seconds,
            verdict=result.verdict.value,
            fully_scanned=result.fully_scanned,
            issues=json.dumps([f"{issue.kind}: {issue.message}" for issue in result.issues]),
        )
        for finding in result.findings:
            scan.findings.append(
                StoredFinding(
                    rule_id=finding.rule_id,
                    severity=finding.severity.value,
                    category=finding.category.value,
                    location=_inner_location(finding.location),
                    message=finding.message,
                    evidence=finding.evidence,
                    fingerprint=fingerprint_of(finding),
                    suppressed=not finding.counts,
                )
            )
        self.session.add(scan)

    def _version_scan(
        self,
        version: Version,
        started_at: datetime,
        started: float,
        verdict: Verdict,
        complete: bool,
        issues: list[str],
        error: str | None,
    ) -> Scan:
        scan = Scan(
            id=uuid.uuid4().hex,
            version_id=version.id,
            tool_version=self.key.tool_version,
            policy_hash=self.key.policy_hash,
            started_at=started_at,
            duration_seconds=round(time.monotonic() - started, 6),
            verdict=verdict.value,
            fully_scanned=complete,
            issues=json.dumps(issues),
            error=error,
        )
        self.session.add(scan)
        return scan

    def _write_back(
        self, connector: Connector, ref: VersionRef, version: Version, scan: Scan, outcome: VersionOutcome
    ) -> VersionOutcome:
        judged = judge_scan(self.session, version, scan, self.options.policy.fail_on)
        tags = {
            "modelshield.verdict": scan.verdict,
            "modelshield.scan_id": scan.id,
            "modelshield.tool_version": scan.tool_version,
            "modelshield.gate": "pass" if judged.passed else "fail",
        }
        tags.update({f"modelshield.findings.{name}": str(n) for name, n in judged.counts.items()})
        try:
            written = connector.write_verdict(ref, tags)
        except Exception as exc:  # the scan is stored either way; the registry may be read-only to us
            self.warnings.append(f"{ref.model} {ref.version}: verdict not written: {_describe(exc)}")
            written = False
        return replace(outcome, verdict_written=written)


def _inner_location(location: Location) -> str:
    inner = Location(
        location.chain[1:], location.offset, location.opcode_index, location.opcode, location.detail
    )
    return inner.render().removeprefix(" › ")


def _local_files(root: Path) -> list[_LocalFile]:
    """Every regular file under the download root, hashed; a link out of it fails the version."""
    from modelshield.connectors import SourceError
    from modelshield.engine.scanner import expand_paths

    out = []
    for target in expand_paths([root]):
        if target.refusal is not None:
            raise SourceError(f"{target.path.relative_to(root)}: {target.refusal}")
        h = hashlib.sha256()
        size = 0
        with target.path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                h.update(chunk)
                size += len(chunk)
        out.append(_LocalFile(target.path.relative_to(root).as_posix(), target.path, size, h.hexdigest()))
    return out
