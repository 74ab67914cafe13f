"""What changed between two versions of a model: files, findings (by fingerprint) and pickle imports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from modelshield.engine.findings import Severity
from modelshield.errors import ModelShieldError
from modelshield.inventory.fingerprints import imported_callable
from modelshield.inventory.schema import Version
from modelshield.inventory.store import ScanKey, VersionFinding, latest_version_scan, version_findings


@dataclass(frozen=True)
class FileChange:
    path: str
    old_sha256: str | None
    new_sha256: str | None


@dataclass(frozen=True)
class DiffFinding:
    fingerprint: str
    rule_id: str
    severity: Severity
    path: str
    location: str
    message: str
    evidence: str


@dataclass(frozen=True)
class VersionDiff:
    """`old` is None when there is nothing to compare with (no known-safe version yet)."""

    model: str
    old: str | None
    new: str
    added_files: tuple[FileChange, ...]
    removed_files: tuple[FileChange, ...]
    changed_files: tuple[FileChange, ...]
    new_findings: tuple[DiffFinding, ...]
    resolved_findings: tuple[DiffFinding, ...]
    added_imports: tuple[str, ...]
    removed_imports: tuple[str, ...]

    def new_findings_at_or_above(self, threshold: Severity) -> tuple[DiffFinding, ...]:
        return tuple(f for f in self.new_findings if f.severity >= threshold)


class NotScanned(ModelShieldError):
    """A version to compare has no scan yet."""


def _findings(session: Session, version: Version | None) -> list[VersionFinding]:
    if version is None:
        return []
    scan = latest_version_scan(session, version)
    if scan is None:
        raise NotScanned(
            f"version {version.version} has never been scanned; run `modelshield inventory sync`"
        )
    return version_findings(session, version, ScanKey(scan.tool_version, scan.policy_hash))


def _counted(items: list[VersionFinding]) -> dict[str, DiffFinding]:
    out: dict[str, DiffFinding] = {}
    for item in items:
        f = item.finding
        if not f.suppressed and f.fingerprint not in out:
            out[f.fingerprint] = DiffFinding(
                f.fingerprint, f.rule_id, Severity(f.severity), item.path, f.location, f.message, f.evidence
            )
    return out


def _imports(items: list[VersionFinding]) -> set[str]:
    names = (imported_callable(item.finding.rule_id, item.finding.evidence) for item in items)
    return {name for name in names if name is not None}


def diff_versions(session: Session, old: Version | None, new: Version) -> VersionDiff:
    """Compare `new` with `old`; findings are matched by fingerprint, so moved bytes are not "new"."""
    old_files = {f.path: f.blob_sha256 for f in old.files} if old is not None else {}
    new_files = {f.path: f.blob_sha256 for f in new.files}
    old_items, new_items = _findings(session, old), _findings(session, new)
    old_found, new_found = _counted(old_items), _counted(new_items)
    old_imports, new_imports = _imports(old_items), _imports(new_items)
    return VersionDiff(
        model=new.model.name,
        old=old.version if old is not None else None,
        new=new.version,
        added_files=tuple(
            FileChange(p, None, new_files[p]) for p in sorted(new_files.keys() - old_files.keys())
        ),
        removed_files=tuple(
            FileChange(p, old_files[p], None) for p in sorted(old_files.keys() - new_files.keys())
        ),
        changed_files=tuple(
            FileChange(p, old_files[p], new_files[p])
            for p in sorted(old_files.keys() & new_files.keys())
            if old_files[p] != new_files[p]
        ),
        new_findings=_ordered(f for k, f in new_found.items() if k not in old_found),
        resolved_findings=_ordered(f for k, f in old_found.items() if k not in new_found),
        added_imports=tuple(sorted(new_imports - old_imports)),
        removed_imports=tuple(sorted(old_imports - new_imports)),
    )


def _ordered(findings: Iterable[DiffFinding]) -> tuple[DiffFinding, ...]:
    return tuple(sorted(findings, key=lambda f: (-f.severity.rank, f.path, f.rule_id, f.fingerprint)))
