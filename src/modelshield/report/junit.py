"""The JUnit XML report: one test case per scanned file, failing when the file is malicious or suspicious."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from modelshield.engine.findings import Finding, ScanIssue, Verdict
from modelshield.engine.result import FileResult, ScanResult

SUITE_NAME = "modelshield"
CLASS_NAME = "modelshield"

# Everything XML 1.0 cannot carry (C0 controls but tab/newline/return, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with every character XML 1.0 forbids replaced by a visible escape."""
    return _NOT_XML.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def render_junit(result: ScanResult) -> str:
    """The report as a JUnit XML document: one suite, one case per file."""
    cases = [_file_case(file) for file in result.files]
    cases += [_input_case(issue) for issue in result.input_issues]
    failures = sum(1 for case in cases if case.find("failure") is not None)
    errors = sum(1 for case in cases if case.find("error") is not None)
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": "0",
        "time": f"{result.duration_seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": SUITE_NAME, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts, "timestamp": result.started_at})
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(
        properties, "property", {"name": "modelshield.version", "value": xml_text(result.tool_version)}
    )
    ET.SubElement(properties, "property", {"name": "verdict", "value": result.verdict.value})
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _file_case(file: FileResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {"classname": CLASS_NAME, "name": xml_text(file.path), "time": f"{file.duration_seconds:.3f}"},
    )
    counted = sorted((f for f in file.findings if f.counts), key=lambda f: f.severity, reverse=True)
    verdict = file.verdict
    if verdict in (Verdict.MALICIOUS, Verdict.SUSPICIOUS):
        worst = counted[0]
        failure = ET.SubElement(
            case, "failure", {"message": xml_text(_headline(worst)), "type": xml_text(worst.rule_id)}
        )
        failure.text = xml_text(_details(file))
    elif verdict is Verdict.ERROR:
        first = file.issues[0]
        error = ET.SubElement(case, "error", {"message": xml_text(_issue_line(first)), "type": "not-scanned"})
        error.text = xml_text(_details(file))
    elif file.findings or file.issues:
        # Clean files can still carry findings below the verdict line or suppressed ones; keep them visible.
        ET.SubElement(case, "system-out").text = xml_text(_details(file))
    return case


def _input_case(issue: ScanIssue) -> ET.Element:
    name = issue.location.chain[0] if issue.location.chain else issue.kind
    case = ET.Element("testcase", {"classname": CLASS_NAME, "name": xml_text(name), "time": "0.000"})
    error = ET.SubElement(case, "error", {"message": xml_text(_issue_line(issue)), "type": "not-scanned"})
    error.text = xml_text(_issue_line(issue))
    return case


def _headline(finding: Finding) -> str:
    return f"{finding.severity.value.upper()} {finding.rule_id}: {finding.message}"


def _issue_line(issue: ScanIssue) -> str:
    return f"not scanned ({issue.kind}): {issue.message} at {issue.location.render()}"


def _details(file: FileResult) -> str:
    lines = [f"verdict: {file.verdict.value}", f"sha256: {file.sha256 or 'not computed'}"]
    for finding in sorted(file.findings, key=lambda f: f.severity, reverse=True):
        lines.append("")
        headline = _headline(finding)
        if finding.suppression is not None:
            state = "suppressed" if finding.suppression.active else "suppression expired"
            headline += f" [{state}: {finding.suppression.reason}]"
        lines.append(headline)
        lines.append(f"  at: {finding.location.render()}")
        if finding.evidence:
            lines.append(f"  evidence: {finding.evidence}")
        if finding.remediation:
            lines.append(f"  remediation: {finding.remediation}")
        if finding.references:
            lines.append(f"  references: {', '.join(finding.references)}")
    for issue in file.issues:
        lines += ["", _issue_line(issue)]
    return "\n".join(lines) + "\n"
