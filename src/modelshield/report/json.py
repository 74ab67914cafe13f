"""The JSON report: a stable, schema-described rendering of a ScanResult for machines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelshield.engine.findings import Finding, Location, ScanIssue, Severity, Suppression, Verdict
from modelshield.engine.result import SCHEMA_VERSION, FileResult, FormatNode, ScanResult
from modelshield.engine.rules import Rule

TOOL_NAME = "modelshield"


def render_json(result: ScanResult) -> str:
    """The report as JSON text; keys always appear in the same order, ending with a newline."""
    return json.dumps(report_document(result), indent=2) + "\n"


def report_document(result: ScanResult) -> dict[str, Any]:
    """The report as plain data (dicts, lists, strings, numbers), ready for `json.dumps`."""
    registry = _rule_registry() if result.findings else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": TOOL_NAME, "version": result.tool_version},
        "started_at": result.started_at,
        "duration_seconds": result.duration_seconds,
        "verdict": result.verdict.value,
        "fully_scanned": result.fully_scanned,
        "summary": _summary(result),
        "files": [_file(file, registry) for file in result.files],
        "errors": [_issue(issue) for issue in result.input_issues],
    }


def _rule_registry() -> Mapping[str, Rule]:
    from modelshield.rules import REGISTRY  # the whole rule table: only a report with findings needs it

    return REGISTRY


def _summary(result: ScanResult) -> dict[str, Any]:
    by_verdict = {verdict.value: 0 for verdict in Verdict}
    for file in result.files:
        by_verdict[file.verdict.value] += 1
    by_severity = {severity.value: 0 for severity in sorted(Severity, reverse=True)}
    counted = [finding for finding in result.findings if finding.counts]
    for finding in counted:
        by_severity[finding.severity.value] += 1
    return {
        "files": len(result.files),
        "findings": len(counted),
        "by_verdict": by_verdict,
        "by_severity": by_severity,
    }


def _file(file: FileResult, registry: Mapping[str, Rule]) -> dict[str, Any]:
    return {
        "path": file.path,
        "size": file.size,
        "sha256": file.sha256,
        "verdict": file.verdict.value,
        "duration_seconds": file.duration_seconds,
        "from_cache": file.from_cache,
        "formats": _format_node(file.tree),
        "findings": [_finding(finding, registry) for finding in file.findings],
        "errors": [_issue(issue) for issue in file.issues],
    }


def _format_node(node: FormatNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "format": node.format,
        "size": node.size,
        "children": [_format_node(child) for child in node.children],
    }


def _finding(finding: Finding, registry: Mapping[str, Rule]) -> dict[str, Any]:
    rule = registry.get(finding.rule_id)
    return {
        "rule_id": finding.rule_id,
        "title": rule.title if rule is not None else None,
        "severity": finding.severity.value,
        "category": finding.category.value,
        "confidence": finding.confidence.value,
        "message": finding.message,
        "location": _location(finding.location),
        "evidence": finding.evidence,
        "remediation": finding.remediation,
        "references": list(finding.references),
        "suppression": _suppression(finding.suppression),
    }


def _suppression(suppression: Suppression | None) -> dict[str, Any] | None:
    if suppression is None:
        return None
    return {
        "reason": suppression.reason,
        "source": suppression.source,
        "expires": suppression.expires,
        "expired": suppression.expired,
    }


def _issue(issue: ScanIssue) -> dict[str, Any]:
    return {"kind": issue.kind, "message": issue.message, "location": _location(issue.location)}


def _location(location: Location) -> dict[str, Any]:
    return {
        "chain": list(location.chain),
        "offset": location.offset,
        "opcode_index": location.opcode_index,
        "opcode": location.opcode,
        "detail": location.detail,
        "display": location.render(),
    }
