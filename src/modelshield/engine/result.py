"""Scan results: per-file verdicts with their format tree, findings and issues."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelshield.engine.findings import Finding, ScanIssue, Severity, Verdict, verdict_for, worst_verdict

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class FormatNode:
    """One blob in a file's container tree: its name in the chain, the format found, its members."""

    name: str
    format: str
    size: int
    children: tuple[FormatNode, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """Everything learned about one file."""

    path: str
    size: int
    sha256: str | None
    tree: FormatNode
    findings: tuple[Finding, ...]
    issues: tuple[ScanIssue, ...]
    duration_seconds: float = 0.0
    from_cache: bool = False
    """Taken from the result cache: stored by an earlier scan of the same content under the same
    scanner build, policy, limits and options (engine/result_cache.py); nothing was parsed this time."""

    @property
    def verdict(self) -> Verdict:
        return verdict_for(self.findings, self.issues)

    @property
    def fully_scanned(self) -> bool:
        return not self.issues

    def worst_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings if f.counts), default=None)


@dataclass(frozen=True)
class ScanResult:
    """The result of one scan over one or more paths."""

    files: tuple[FileResult, ...]
    tool_version: str
    started_at: str
    duration_seconds: float
    input_issues: tuple[ScanIssue, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        verdicts = [f.verdict for f in self.files]
        if self.input_issues:
            verdicts.append(Verdict.ERROR)
        return worst_verdict(verdicts)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for file in self.files for f in file.findings)

    def has_findings_at_or_above(self, threshold: Severity) -> bool:
        return any(f.severity >= threshold for f in self.findings if f.counts)

    @property
    def fully_scanned(self) -> bool:
        return not self.input_issues and all(f.fully_scanned for f in self.files)
