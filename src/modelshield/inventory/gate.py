"""The production gate: does a version's latest scan pass the policy? Passing marks it known-safe."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import Enum

from sqlalchemy.orm import Session

from modelshield.engine.findings import Severity
from modelshield.inventory.schema import GATE_FAIL, GATE_OK, GateDecision, Scan, Version
from modelshield.inventory.store import ScanKey, latest_version_scan, utcnow, version_findings


class GateOutcome(Enum):
    PASSED = "pass"
    FINDINGS = "findings"
    """A finding at or above the threshold."""
    INCOMPLETE = "incomplete"
    """Never scanned, not downloadable, or some file not fully scanned: never a pass."""


@dataclass(frozen=True)
class GateResult:
    outcome: GateOutcome
    reason: str
    scan_id: str | None
    counts: dict[str, int]
    """Counted (not suppressed) findings by severity value."""

    @property
    def passed(self) -> bool:
        return self.outcome is GateOutcome.PASSED


def severity_counts(session: Session, version: Version, scan: Scan) -> dict[str, int]:
    key = ScanKey(scan.tool_version, scan.policy_hash)
    counted = Counter(
        item.finding.severity
        for item in version_findings(session, version, key)
        if not item.finding.suppressed
    )
    return {severity.value: counted.get(severity.value, 0) for severity in sorted(Severity, reverse=True)}


def judge_scan(session: Session, version: Version, scan: Scan | None, threshold: Severity) -> GateResult:
    """The gate's judgement of one version scan: findings at or above `threshold` fail it, and so does
    anything less than a complete scan."""
    if scan is None:
        return GateResult(GateOutcome.INCOMPLETE, "the version has never been scanned; run sync", None, {})
    if scan.error is not None:
        return GateResult(
            GateOutcome.INCOMPLETE, f"the version could not be scanned: {scan.error}", scan.id, {}
        )
    counts = severity_counts(session, version, scan)
    over = {name: n for name, n in counts.items() if n and Severity(name) >= threshold}
    if over:
        listed = ", ".join(f"{n} {name}" for name, n in over.items())
        reason = f"findings at or above {threshold.value}: {listed}"
        return GateResult(GateOutcome.FINDINGS, reason, scan.id, counts)
    if not scan.fully_scanned:
        issues = json.loads(scan.issues)
        shown = "; ".join(issues[:3]) + (f"; and {len(issues) - 3} more" if len(issues) > 3 else "")
        return GateResult(
            GateOutcome.INCOMPLETE, f"not fully scanned: {shown or 'unknown reason'}", scan.id, counts
        )
    return GateResult(GateOutcome.PASSED, f"no finding at or above {threshold.value}", scan.id, counts)


def run_gate(session: Session, version: Version, threshold: Severity, policy_hash: str | None) -> GateResult:
    """Judge the version's latest scan (under `policy_hash` when given), record the decision, and on a
    pass record the version as the model's last known-safe version."""
    scan = latest_version_scan(session, version, policy_hash)
    if scan is None and policy_hash is not None and latest_version_scan(session, version) is not None:
        result = GateResult(
            GateOutcome.INCOMPLETE,
            "the version was never scanned under this policy; run `modelshield inventory sync --policy`",
            None,
            {},
        )
    else:
        result = judge_scan(session, version, scan, threshold)
    now = utcnow()
    session.add(
        GateDecision(
            version_id=version.id,
            scan_id=result.scan_id,
            decided_at=now,
            passed=result.passed,
            threshold=threshold.value,
            policy_hash=policy_hash or (scan.policy_hash if scan is not None else ""),
            reason=result.reason,
        )
    )
    version.gate_status = GATE_OK if result.passed else GATE_FAIL
    # A version that fails now (a stricter policy, a newer scanner) is no longer known to be safe.
    version.known_safe = result.passed
    version.known_safe_at = now if result.passed else None
    session.commit()
    return result
