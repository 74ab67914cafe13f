"""CycloneDX 1.6 ML-BOM report: a machine-learning-model component per file, findings as vulnerabilities."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import PurePath
from typing import TYPE_CHECKING

from modelshield.engine.findings import Finding, ScanIssue, Severity
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.engine.rules import Rule
from modelshield.errors import UsageError

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component
    from cyclonedx.model.vulnerability import Vulnerability, VulnerabilitySource

TOOL_NAME = "modelshield"
PROPERTY_PREFIX = "modelshield:"
MISSING_EXTRA_MESSAGE = (
    "the cyclonedx report needs the optional 'sbom' extra: pip install 'modelshield[sbom]'"
)

# Findings are vulnerabilities, not properties: CycloneDX 1.6 defines a vulnerability as "a weakness in a
# component … that could be exploited", with an id from a named source, ratings whose severities are our
# five, CWEs, a recommendation and `affects` pointing at the component by bom-ref. That is what a finding
# is, and VEX/VDR consumers (Dependency-Track and others) read it without knowing modelshield.
# What the schema has no field for (category, confidence, location, evidence, suppression) goes into the
# vulnerability's `modelshield:` properties; what describes the file (format tree, verdict, counts, parts
# not scanned) goes into the component's.


def require_cyclonedx() -> None:
    """Fail with a message naming the extra when cyclonedx-python-lib is not installed."""
    try:
        import cyclonedx  # noqa: F401 - only whether it imports
    except ImportError:
        raise UsageError(MISSING_EXTRA_MESSAGE) from None


def render_cyclonedx(result: ScanResult) -> str:
    """The report as CycloneDX 1.6 JSON text, ending with a newline."""
    require_cyclonedx()
    from cyclonedx.output.json import JsonV1Dot6

    return JsonV1Dot6(build_bom(result)).output_as_string(indent=2) + "\n"


def build_bom(result: ScanResult) -> Bom:
    """The ML-BOM of a scan: metadata (tool, time, overall verdict), one component per file, findings."""
    require_cyclonedx()
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository

    from modelshield.rules import REGISTRY

    tool = Component(
        type=ComponentType.APPLICATION,
        name=TOOL_NAME,
        version=result.tool_version,
        bom_ref=f"{TOOL_NAME}@{result.tool_version}",
    )
    metadata = BomMetaData(
        tools=ToolRepository(components=[tool]),
        timestamp=_timestamp(result.started_at),
        properties=[
            _property("verdict", result.verdict.value),
            _property("fully-scanned", _bool(result.fully_scanned)),
            _property("duration-seconds", str(result.duration_seconds)),
            *(_property("not-scanned", _issue_text(issue)) for issue in result.input_issues),
        ],
    )
    components: list[Component] = []
    vulnerabilities: list[Vulnerability] = []
    for bom_ref, file in zip(_unique_refs(result.files), result.files, strict=True):
        components.append(_component(file, bom_ref))
        vulnerabilities.extend(
            _vulnerability(finding, f"{bom_ref}#finding-{index}", bom_ref, REGISTRY)
            for index, finding in enumerate(file.findings, start=1)
        )
    return Bom(metadata=metadata, components=components, vulnerabilities=vulnerabilities)


def _unique_refs(files: tuple[FileResult, ...]) -> list[str]:
    # A path given twice on the command line is scanned twice; bom-refs must still be unique.
    seen: Counter[str] = Counter()
    refs = []
    for file in files:
        base = f"file:{file.path}"
        seen[base] += 1
        refs.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return refs


def _component(file: FileResult, bom_ref: str) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType

    counted = [finding for finding in file.findings if finding.counts]
    by_severity = Counter(finding.severity for finding in counted)
    properties = [
        _property("path", file.path),
        _property("size", str(file.size)),
        _property("verdict", file.verdict.value),
        _property("fully-scanned", _bool(file.fully_scanned)),
        *(_property("format", chain) for chain in format_chains(file.tree)),
        _property("findings", str(len(counted))),
        *(
            _property(f"findings:{severity.value}", str(by_severity[severity]))
            for severity in sorted(Severity, reverse=True)
        ),
        _property("findings:suppressed", str(len(file.findings) - len(counted))),
        *(_property("not-scanned", _issue_text(issue)) for issue in file.issues),
    ]
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=file.sha256)] if file.sha256 else []
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=PurePath(file.path).name or file.path,
        bom_ref=bom_ref,
        hashes=hashes,
        properties=properties,
    )


def format_chains(tree: FormatNode) -> list[str]:
    """Each distinct path of formats from the file down to a leaf, e.g. "zip › pickle"; plain data
    members are left out unless the file itself is plain data."""
    chains = list(dict.fromkeys(_chains(tree)))
    return chains or [tree.format]


def _chains(node: FormatNode, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    here = (*prefix, node.format)
    interesting = [child for child in node.children if child.format != "data"]
    if not interesting:
        if node.format != "data" or not prefix:
            yield " › ".join(here)
        return
    for child in interesting:
        yield from _chains(child, here)


def _vulnerability(
    finding: Finding, bom_ref: str, target_ref: str, registry: Mapping[str, Rule]
) -> Vulnerability:
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
    )

    rule = registry.get(finding.rule_id)
    source = _source()
    properties = [
        _property("category", finding.category.value),
        _property("confidence", finding.confidence.value),
        _property("location", finding.location.render()),
    ]
    if finding.evidence:
        properties.append(_property("evidence", finding.evidence))
    if finding.suppression is not None:
        suppression = finding.suppression
        state = "expired" if suppression.expired else "active"
        properties.append(_property("suppression", f"{state}: {suppression.reason} ({suppression.source})"))
    detail = f"{rule.title}. {rule.description}" if rule is not None else None
    return Vulnerability(
        bom_ref=bom_ref,
        id=finding.rule_id,
        source=source,
        ratings=[
            VulnerabilityRating(
                source=source,
                severity=VulnerabilitySeverity(finding.severity.value),
                method=VulnerabilityScoreSource.OTHER,
            )
        ],
        cwes=_cwes(rule),
        description=finding.message,
        detail=detail,
        recommendation=finding.remediation or None,
        affects=[BomTarget(ref=target_ref)],
        properties=properties,
    )


def _cwes(rule: Rule | None) -> list[int]:
    if rule is None or rule.cwe is None:
        return []
    number = rule.cwe.upper().removeprefix("CWE-")
    return [int(number)] if number.isdigit() else []


def _source() -> VulnerabilitySource:
    from cyclonedx.model.vulnerability import VulnerabilitySource

    return VulnerabilitySource(name=TOOL_NAME)


def _property(name: str, value: str) -> Property:
    from cyclonedx.model import Property

    return Property(name=PROPERTY_PREFIX + name, value=value)


def _issue_text(issue: ScanIssue) -> str:
    return f"{issue.kind}: {issue.message} ({issue.location.render()})"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
