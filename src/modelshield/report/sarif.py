"""The SARIF 2.1.0 report: OASIS-schema-valid and shaped for GitHub code scanning uploads."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from modelshield.engine.findings import Confidence, Finding, Location, ScanIssue, Severity
from modelshield.engine.result import FileResult, ScanResult
from modelshield.engine.rules import Rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL_NAME = "modelshield"
SOURCE_ROOT = "%SRCROOT%"
FINGERPRINT_KEY = "modelshieldFingerprint/v1"
MAX_RESULTS_PER_RUN = 25_000
"""GitHub code scanning refuses a run with more results than this."""

SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
"""GitHub reads `security-severity` as a CVSS-like score: ≥ 9 critical, ≥ 7 high, ≥ 4 medium, else low."""

PRECISION = {Confidence.HIGH: "high", Confidence.MEDIUM: "medium", Confidence.LOW: "low"}


def sarif_level(severity: Severity) -> str:
    """The one mapping from our severities to SARIF levels: critical/high error, medium warning, else note."""
    if severity >= Severity.HIGH:
        return "error"
    if severity >= Severity.MEDIUM:
        return "warning"
    return "note"


def render_sarif(result: ScanResult) -> str:
    """The report as SARIF 2.1.0 JSON text, ending with a newline."""
    return json.dumps(sarif_document(result), indent=2) + "\n"


def sarif_document(result: ScanResult) -> dict[str, Any]:
    """The report as plain SARIF data: one run, every registered rule, one result per finding."""
    from modelshield.rules import REGISTRY

    rules = _rules_with_strangers(REGISTRY, result.findings)
    rule_index = {rule_id: index for index, rule_id in enumerate(rules)}
    artifact_index = {file.path: index for index, file in enumerate(result.files)}
    findings = [(file, finding) for file in result.files for finding in file.findings]
    # Worst first, so that when GitHub's cap bites, what is dropped is the least severe.
    findings.sort(key=lambda pair: pair[1].severity, reverse=True)
    kept = findings[:MAX_RESULTS_PER_RUN]
    notifications = [_notification(issue, None, None) for issue in result.input_issues]
    notifications += [
        _notification(issue, file.path, artifact_index[file.path])
        for file in result.files
        for issue in file.issues
    ]
    if len(findings) > len(kept):
        notifications.append(
            {
                "level": "warning",
                "message": {
                    "text": f"{len(findings) - len(kept)} of {len(findings)} findings were left out of this "
                    f"report: SARIF consumers accept at most {MAX_RESULTS_PER_RUN} results per run. "
                    "The least severe were dropped; use the JSON report for all of them."
                },
                "descriptor": {"id": "results-truncated"},
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": result.tool_version,
                "semanticVersion": result.tool_version,
                "rules": list(rules.values()),
            }
        },
        "originalUriBaseIds": {
            SOURCE_ROOT: {"description": {"text": "The directory the scan was started from."}}
        },
        "invocations": [_invocation(result, notifications)],
        "artifacts": [_artifact(file) for file in result.files],
        "results": [
            _result(finding, file, rule_index.get(finding.rule_id), artifact_index[file.path])
            for file, finding in kept
        ],
        "columnKind": "unicodeCodePoints",
        "properties": {"verdict": result.verdict.value, "fullyScanned": result.fully_scanned},
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [_valid_unicode(run)]}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: Any) -> Any:
    """The data with lone surrogates (from undecodable file names) shown as escapes: strict JSON readers
    refuse them, and the artifact URI already carries the original bytes."""
    if isinstance(value, str):
        return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", value)
    if isinstance(value, dict):
        return {key: _valid_unicode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(item) for item in value]
    return value


def _rules_with_strangers(
    registry: Mapping[str, Rule], findings: Iterable[Finding]
) -> dict[str, dict[str, Any]]:
    """Every registered rule, plus a plain descriptor for any finding whose rule is not registered."""
    rules = {rule_id: _rule(rule) for rule_id, rule in registry.items()}
    for finding in findings:
        if finding.rule_id not in rules:
            rules[finding.rule_id] = _unregistered_rule(finding)
    return rules


def _rule(rule: Rule) -> dict[str, Any]:
    tags = ["security", rule.category.value]
    if rule.cwe:
        tags.append(f"external/cwe/{rule.cwe.lower()}")
    help_text = rule.remediation
    if rule.references:
        help_text += "\n\nReferences: " + ", ".join(rule.references)
    return {
        "id": rule.id,
        "name": rule_name(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": sarif_level(rule.severity)},
        "properties": {
            "tags": tags,
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "precision": PRECISION[rule.confidence],
            "severity": rule.severity.value,
            "category": rule.category.value,
            "since": rule.since,
        },
    }


def _unregistered_rule(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.rule_id,
        "name": rule_name(finding.rule_id),
        "shortDescription": {"text": finding.rule_id},
        "fullDescription": {"text": finding.message},
        "help": {"text": finding.remediation or "No remediation is recorded for this rule."},
        "defaultConfiguration": {"level": sarif_level(finding.severity)},
        "properties": {
            "tags": ["security", finding.category.value],
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "precision": PRECISION[finding.confidence],
        },
    }


def rule_name(rule_id: str) -> str:
    """A rule's SARIF `name`, distinct from its id: PICKLE-DANGEROUS-CALL → PickleDangerousCall."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", rule_id) if part)


def artifact_uri(path: str) -> tuple[str, str | None]:
    """The URI of a scanned file and its base id: relative paths stay relative (to %SRCROOT%), as GitHub
    wants; absolute paths become file URIs, which GitHub makes relative to the checkout itself."""
    windows = PureWindowsPath(path)
    if windows.drive and windows.is_absolute():
        return windows.as_uri(), None
    posix = path
    if posix.startswith("/"):
        return PurePosixPath(posix).as_uri(), None
    while posix.startswith("./"):
        posix = posix[2:]
    # Undecodable names arrive with surrogate escapes; their original bytes are what the URI must carry.
    raw = posix.encode("utf-8", errors="surrogateescape")
    return quote(raw, safe="/-._~"), SOURCE_ROOT


def _artifact_location(path: str, index: int | None) -> dict[str, Any]:
    uri, base = artifact_uri(path)
    location: dict[str, Any] = {"uri": uri}
    if base is not None:
        location["uriBaseId"] = base
    if index is not None:
        location["index"] = index
    return location


def _artifact(file: FileResult) -> dict[str, Any]:
    artifact: dict[str, Any] = {
        "location": _artifact_location(file.path, None),
        "length": file.size,
        "properties": {"verdict": file.verdict.value, "format": file.tree.format},
    }
    if file.sha256 is not None:
        artifact["hashes"] = {"sha-256": file.sha256}
    return artifact


def _physical_location(location: Location, path: str, index: int | None) -> dict[str, Any]:
    # Model files are binary: line 1 anchors the annotation. A byte offset only locates something in
    # the file itself when the finding is not inside a member (the offset is relative to the member).
    region: dict[str, Any] = {"startLine": 1}
    if location.offset is not None and len(location.chain) <= 1:
        region["byteOffset"] = location.offset
    return {"artifactLocation": _artifact_location(path, index), "region": region}


def _logical_locations(location: Location) -> list[dict[str, Any]]:
    if not location.chain:
        return []
    logical: dict[str, Any] = {
        "name": location.chain[-1],
        "fullyQualifiedName": location.render(),
        "kind": "member" if len(location.chain) > 1 else "resource",
    }
    return [logical]


def _location_properties(location: Location) -> dict[str, Any]:
    return {
        "chain": list(location.chain),
        "offset": location.offset,
        "opcodeIndex": location.opcode_index,
        "opcode": location.opcode,
        "detail": location.detail,
    }


def fingerprint(finding: Finding, file: FileResult) -> str:
    """Stable across runs for the same rule at the same place in the same content."""
    location = finding.location
    parts = (
        finding.rule_id,
        file.sha256 or f"path:{file.path}",
        *location.chain,
        f"opcode:{location.opcode_index}",
        f"offset:{location.offset}",
        f"detail:{location.detail}",
    )
    material = "\x00".join(parts).encode("utf-8", errors="surrogateescape")
    return hashlib.sha256(material).hexdigest()


def _result(
    finding: Finding, file: FileResult, rule_index: int | None, artifact_index: int
) -> dict[str, Any]:
    text = f"{finding.message} (at {finding.location.render()})"
    if finding.evidence:
        text += f" Evidence: {finding.evidence}"
    location: dict[str, Any] = {
        "physicalLocation": _physical_location(finding.location, file.path, artifact_index),
    }
    logical = _logical_locations(finding.location)
    if logical:
        location["logicalLocations"] = logical
    sarif_result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "level": sarif_level(finding.severity),
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding, file)},
        "properties": {
            "severity": finding.severity.value,
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "category": finding.category.value,
            "confidence": finding.confidence.value,
            "evidence": finding.evidence,
            "remediation": finding.remediation,
            "references": list(finding.references),
            "location": _location_properties(finding.location),
        },
    }
    if rule_index is not None:
        sarif_result["ruleIndex"] = rule_index
    suppression = finding.suppression
    if suppression is not None:
        if suppression.active:
            sarif_result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": suppression.reason,
                    "properties": {"source": suppression.source, "expires": suppression.expires},
                }
            ]
        else:
            sarif_result["properties"]["expiredSuppression"] = {
                "reason": suppression.reason,
                "source": suppression.source,
                "expires": suppression.expires,
            }
    return sarif_result


def _notification(issue: ScanIssue, path: str | None, artifact_index: int | None) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "level": "error",
        "message": {
            "text": f"Not fully scanned ({issue.kind}): {issue.message} (at {issue.location.render()})"
        },
        "descriptor": {"id": issue.kind or "not-scanned"},
        "properties": {"location": _location_properties(issue.location)},
    }
    path = path or (issue.location.chain[0] if issue.location.chain else None)
    if path:
        location: dict[str, Any] = {
            "physicalLocation": _physical_location(issue.location, path, artifact_index)
        }
        logical = _logical_locations(issue.location)
        if logical:
            location["logicalLocations"] = logical
        notification["locations"] = [location]
    return notification


def _invocation(result: ScanResult, notifications: list[dict[str, Any]]) -> dict[str, Any]:
    invocation: dict[str, Any] = {
        # A file that could not be scanned is the tool doing its job; bad input to the tool is not.
        "executionSuccessful": not result.input_issues,
        "toolExecutionNotifications": notifications,
    }
    started = _parse_time(result.started_at)
    if started is not None:
        invocation["startTimeUtc"] = _utc(started)
        invocation["endTimeUtc"] = _utc(started + timedelta(seconds=result.duration_seconds))
    return invocation


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
