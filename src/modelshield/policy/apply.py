"""The policy pass over a finished scan result: keep disabled rules out, re-grade, mark suppressions."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from datetime import date

from modelshield.engine.findings import Finding, Suppression
from modelshield.engine.result import FileResult, ScanResult
from modelshield.policy.model import Policy, SuppressionRule


def apply_policy(result: ScanResult, policy: Policy, today: date) -> ScanResult:
    """A new result with `policy` applied; `result` is left as it was.

    Findings of disabled rules are left out (a disabled rule is one the user chose not to run; the
    scanner already drops them, this keeps results made under another policy consistent).
    Re-graded findings carry their new severity. A finding matched by a `[[suppress]]` entry stays,
    with a `Suppression`; an entry whose `expires` date is before `today` marks it expired and the
    finding counts again. The first matching entry that is still in force wins.
    """
    files = tuple(_apply_to_file(file, policy, today) for file in result.files)
    return replace(result, files=files)


def _apply_to_file(file: FileResult, policy: Policy, today: date) -> FileResult:
    findings = tuple(
        _apply_to_finding(finding, file, policy, today)
        for finding in file.findings
        if finding.rule_id not in policy.disabled_rules
    )
    return replace(file, findings=findings)


def _apply_to_finding(finding: Finding, file: FileResult, policy: Policy, today: date) -> Finding:
    severity = policy.severity_overrides.get(finding.rule_id)
    if severity is not None and severity is not finding.severity:
        finding = replace(finding, severity=severity)
    matched = [rule for rule in policy.suppressions if matches(rule, finding, file)]
    if not matched:
        return finding
    in_force = [rule for rule in matched if not _expired(rule, today)]
    chosen = in_force[0] if in_force else max(matched, key=lambda rule: rule.expires or date.min)
    return replace(finding, suppression=_suppression(chosen, today))


def matches(rule: SuppressionRule, finding: Finding, file: FileResult) -> bool:
    """Whether a `[[suppress]]` entry covers `finding` of `file`: same rule, and every selector given
    matches (the file's SHA-256; the glob against the reported path or any element of the chain)."""
    if rule.rule != finding.rule_id:
        return False
    if rule.sha256 is not None and rule.sha256 != file.sha256:
        return False
    if rule.path is not None:
        # fnmatchcase: the same answer on every platform, whatever its file-name case rules.
        candidates = (file.path, *finding.location.chain)
        if not any(fnmatch.fnmatchcase(candidate, rule.path) for candidate in candidates):
            return False
    return True


def _expired(rule: SuppressionRule, today: date) -> bool:
    return rule.expires is not None and today > rule.expires


def _suppression(rule: SuppressionRule, today: date) -> Suppression:
    return Suppression(
        reason=rule.reason,
        source=rule.source,
        expires=rule.expires.isoformat() if rule.expires is not None else None,
        expired=_expired(rule, today),
    )
