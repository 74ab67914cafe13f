"""The vocabulary of the product: severities, categories, locations, findings and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(Enum):
    """How bad a finding is; ordered so that `max()` picks the worst."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Category(Enum):
    """What kind of harm a finding is about."""

    CODE_EXECUTION = "code-execution"
    NETWORK = "network"
    FILESYSTEM = "filesystem"
    EMBEDDED_PAYLOAD = "embedded-payload"
    DECOMPRESSION = "decompression"
    UNSAFE_MODULE = "unsafe-module"
    EXPLOIT = "exploit"
    INTEGRITY = "integrity"


class Confidence(Enum):
    """How sure a rule is that what it saw is what it says."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Verdict(Enum):
    """A file's (or a whole scan's) judgement, ordered from best to worst."""

    CLEAN = "clean"
    ERROR = "error"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]


_VERDICT_RANK = {v: i for i, v in enumerate(Verdict)}


def worst_verdict(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict:
    """The worst of several verdicts: malicious > suspicious > error > clean."""
    return max(verdicts, key=lambda v: v.rank, default=Verdict.CLEAN)


@dataclass(frozen=True)
class Location:
    """Where something was found: the provenance chain plus a position inside the last element.

    `chain` runs from the scanned file down to the innermost blob, e.g.
    ("model.pt", "archive/data.pkl"). `offset` is a byte offset inside the innermost blob;
    `opcode_index`/`opcode` locate a pickle instruction; `detail` names a layer, node or key.
    """

    chain: tuple[str, ...]
    offset: int | None = None
    opcode_index: int | None = None
    opcode: str | None = None
    detail: str | None = None

    def render(self) -> str:
        text = " › ".join(self.chain)
        parts = []
        if self.opcode_index is not None:
            parts.append(f"opcode #{self.opcode_index}" + (f" {self.opcode}" if self.opcode else ""))
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        if self.detail:
            parts.append(self.detail)
        return text + (f" › {', '.join(parts)}" if parts else "")


@dataclass(frozen=True)
class Suppression:
    """Why a policy set a finding aside. An expired suppression no longer suppresses, and says so."""

    reason: str
    source: str
    expires: str | None = None
    expired: bool = False

    @property
    def active(self) -> bool:
        return not self.expired


@dataclass(frozen=True)
class Finding:
    """One thing a rule found, complete when created. A policy pass may return a copy with a
    `suppression`; suppressed findings stay in every output, marked, and do not count."""

    rule_id: str
    severity: Severity
    category: Category
    confidence: Confidence
    message: str
    location: Location
    evidence: str = ""
    remediation: str = ""
    references: tuple[str, ...] = field(default_factory=tuple)
    suppression: Suppression | None = None

    @property
    def counts(self) -> bool:
        """Whether the finding counts towards verdicts and exit codes (not actively suppressed)."""
        return self.suppression is None or not self.suppression.active


@dataclass(frozen=True)
class ScanIssue:
    """Why part of a file could not be scanned; any issue keeps a file from being called clean."""

    kind: str
    message: str
    location: Location


def verdict_for(findings: tuple[Finding, ...], issues: tuple[ScanIssue, ...]) -> Verdict:
    """Any critical → malicious; any high or medium → suspicious; else error if not fully scanned."""
    worst = max((f.severity for f in findings if f.counts), default=Severity.INFO)
    if worst >= Severity.CRITICAL:
        return Verdict.MALICIOUS
    if worst >= Severity.MEDIUM:
        return Verdict.SUSPICIOUS
    if issues:
        return Verdict.ERROR
    return Verdict.CLEAN
