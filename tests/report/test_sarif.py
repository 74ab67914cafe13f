"""The SARIF report: valid against the OASIS 2.1.0 schema and shaped as GitHub code scanning requires."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import modelshield
from modelshield.engine.findings import Severity, Suppression
from modelshield.engine.result import ScanResult
from modelshield.report.sarif import (
    FINGERPRINT_KEY,
    MAX_RESULTS_PER_RUN,
    SECURITY_SEVERITY,
    artifact_uri,
    render_sarif,
    sarif_level,
)
from modelshield.rules import REGISTRY

# Loading this would run `os.system("true")`; the scanner must flag it without loading it.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
SCHEMA_PATH = Path(__file__).parent.parent / "schemas" / "sarif-schema-2.1.0.json"


def write_samples(root: Path) -> None:
    """A malicious pickle, the same inside a zip, a clean pickle and a file that cannot be scanned."""
    (root / "evil.pkl").write_bytes(MALICIOUS_PICKLE)
    with zipfile.ZipFile(root / "bundle.zip", "w") as archive:
        archive.writestr("archive/data.pkl", MALICIOUS_PICKLE)
    (root / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    # A link out of the scanned tree is never followed: the file is reported as not scanned.
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "escape.bin").symlink_to(outside / "secret.bin")


@pytest.fixture
def scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScanResult:
    root = tmp_path / "models"
    root.mkdir()
    write_samples(root)
    monkeypatch.chdir(root)
    return modelshield.scan(".")


def sarif(result: ScanResult) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render_sarif(result))
    return document


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator_class(schema, format_checker=validator_class.FORMAT_CHECKER).validate(document)


def results_by_uri(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for result in document["runs"][0]["results"]:
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        grouped.setdefault(uri, []).append(result)
    return grouped


def test_report_validates_against_the_oasis_schema(scanned: ScanResult) -> None:
    document = sarif(scanned)
    assert document["version"] == "2.1.0"
    validate(document)


def test_every_registered_rule_is_described_with_what_github_reads(scanned: ScanResult) -> None:
    rules = sarif(scanned)["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == list(REGISTRY)
    for rule in rules:
        registered = REGISTRY[rule["id"]]
        assert rule["name"] and rule["name"] != rule["id"]
        assert rule["shortDescription"]["text"] == registered.title
        assert rule["fullDescription"]["text"] == registered.description
        assert rule["help"]["text"].startswith(registered.remediation)
        assert rule["defaultConfiguration"]["level"] == sarif_level(registered.severity)
        properties = rule["properties"]
        assert "security" in properties["tags"]
        assert float(properties["security-severity"]) == float(SECURITY_SEVERITY[registered.severity])
        assert properties["precision"] in {"very-high", "high", "medium", "low"}


def test_cwe_becomes_a_github_tag() -> None:
    modelshield_rules = sarif(ScanResult((), "0", "2026-01-01T00:00:00+00:00", 0.0))["runs"][0]["tool"]
    by_id = {rule["id"]: rule for rule in modelshield_rules["driver"]["rules"]}
    assert "external/cwe/cwe-502" in by_id["PICKLE-DANGEROUS-CALL"]["properties"]["tags"]


def test_results_carry_rule_message_relative_location_and_fingerprint(scanned: ScanResult) -> None:
    document = sarif(scanned)
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    results = document["runs"][0]["results"]
    assert len(results) == len(scanned.findings)
    for result in results:
        assert result["ruleId"] == rules[result["ruleIndex"]]["id"]
        assert result["message"]["text"]
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not physical["artifactLocation"]["uri"].startswith(("/", "./", "file:"))
        assert physical["region"]["startLine"] >= 1
        assert len(result["partialFingerprints"][FINGERPRINT_KEY]) == 64


def test_malicious_pickle_is_an_error_at_its_opcode(scanned: ScanResult) -> None:
    [result] = results_by_uri(sarif(scanned))["evil.pkl"]
    assert result["ruleId"] == "PICKLE-DANGEROUS-CALL"
    assert result["level"] == "error"
    assert "opcode #4 REDUCE" in result["message"]["text"]
    assert "os.system('true')" in result["message"]["text"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["region"] == {"startLine": 1, "byteOffset": 21}
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "evil.pkl › opcode #4 REDUCE, offset 21"
    )


def test_member_chain_is_a_logical_location_and_member_offsets_stay_out_of_the_region(
    scanned: ScanResult,
) -> None:
    results = results_by_uri(sarif(scanned))["bundle.zip"]
    [call] = [result for result in results if result["ruleId"] == "PICKLE-DANGEROUS-CALL"]
    location = call["locations"][0]
    assert location["physicalLocation"]["region"] == {"startLine": 1}
    logical = location["logicalLocations"][0]
    assert logical["name"] == "archive/data.pkl"
    assert logical["fullyQualifiedName"].startswith("bundle.zip › archive/data.pkl › opcode #4")
    assert call["properties"]["location"]["chain"] == ["bundle.zip", "archive/data.pkl"]


def test_unscannable_file_is_a_notification_not_a_result(scanned: ScanResult) -> None:
    document = sarif(scanned)
    invocation = document["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error"
    assert notification["descriptor"]["id"] == "not-scanned"
    assert "outside the scanned tree" in notification["message"]["text"]
    uri = notification["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "escape.bin"
    assert "escape.bin" not in results_by_uri(document)


def test_every_scanned_file_is_an_artifact_with_its_hash(scanned: ScanResult) -> None:
    artifacts = sarif(scanned)["runs"][0]["artifacts"]
    assert [artifact["location"]["uri"] for artifact in artifacts] == [file.path for file in scanned.files]
    for artifact, file in zip(artifacts, scanned.files):
        assert artifact.get("hashes") == ({"sha-256": file.sha256} if file.sha256 else None)
        assert artifact["length"] == file.size


def test_fingerprints_are_stable_across_runs_and_distinct_across_findings(
    scanned: ScanResult, tmp_path: Path
) -> None:
    again = modelshield.scan(".")

    def prints(result: ScanResult) -> list[str]:
        return [r["partialFingerprints"][FINGERPRINT_KEY] for r in sarif(result)["runs"][0]["results"]]

    assert prints(scanned) == prints(again)
    assert len(set(prints(scanned))) == len(prints(scanned))


def test_fingerprint_follows_content_not_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.pkl").write_bytes(MALICIOUS_PICKLE)
    first = sarif(modelshield.scan("a.pkl"))["runs"][0]["results"][0]["partialFingerprints"]
    Path("a.pkl").write_bytes(MALICIOUS_PICKLE.replace(b"true", b"id"))
    second = sarif(modelshield.scan("a.pkl"))["runs"][0]["results"][0]["partialFingerprints"]
    assert first != second


def test_active_suppression_is_external_with_its_reason(scanned: ScanResult) -> None:
    suppressed_files = tuple(
        replace(
            file,
            findings=tuple(
                replace(finding, suppression=Suppression("vetted test fixture", "policy.toml"))
                for finding in file.findings
            ),
        )
        for file in scanned.files
    )
    document = sarif(replace(scanned, files=suppressed_files))
    validate(document)
    for result in document["runs"][0]["results"]:
        assert result["suppressions"][0]["kind"] == "external"
        assert result["suppressions"][0]["justification"] == "vetted test fixture"


def test_expired_suppression_is_not_a_suppression(scanned: ScanResult) -> None:
    expired = Suppression("was vetted", "policy.toml", expires="2020-01-01", expired=True)
    file = scanned.files[[f.path for f in scanned.files].index("evil.pkl")]
    marked = replace(file, findings=tuple(replace(f, suppression=expired) for f in file.findings))
    document = sarif(replace(scanned, files=(marked,)))
    [result] = document["runs"][0]["results"]
    assert "suppressions" not in result
    assert result["properties"]["expiredSuppression"]["reason"] == "was vetted"


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        (Severity.CRITICAL, "error"),
        (Severity.HIGH, "error"),
        (Severity.MEDIUM, "warning"),
        (Severity.LOW, "note"),
        (Severity.INFO, "note"),
    ],
)
def test_severity_maps_to_one_sarif_level(severity: Severity, level: str) -> None:
    assert sarif_level(severity) == level


def test_results_beyond_githubs_cap_are_dropped_least_severe_first(scanned: ScanResult) -> None:
    file = scanned.files[[f.path for f in scanned.files].index("evil.pkl")]
    [finding] = file.findings
    low = replace(finding, severity=Severity.LOW)
    many = replace(file, findings=(low,) * MAX_RESULTS_PER_RUN + (finding,))
    document = sarif(replace(scanned, files=(many,)))
    run = document["runs"][0]
    assert len(run["results"]) == MAX_RESULTS_PER_RUN
    assert run["results"][0]["level"] == "error"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["results-truncated"]


@pytest.mark.parametrize(
    ("path", "uri", "base"),
    [
        ("models/a b.pkl", "models/a%20b.pkl", "%SRCROOT%"),
        ("./models/x.pt", "models/x.pt", "%SRCROOT%"),
        ("/abs/model.pt", "file:///abs/model.pt", None),
        ("odd<name>.pkl", "odd%3Cname%3E.pkl", "%SRCROOT%"),
    ],
)
def test_artifact_uris(path: str, uri: str, base: str | None) -> None:
    assert artifact_uri(path) == (uri, base)


def test_input_error_marks_execution_unsuccessful(scanned: ScanResult) -> None:
    from modelshield.engine.findings import Location, ScanIssue

    broken = replace(scanned, input_issues=(ScanIssue("io", "cannot read", Location(("gone.pt",))),))
    document = sarif(broken)
    validate(document)
    assert document["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_undecodable_file_name_keeps_the_document_strict_unicode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"bad\xffname.pkl")
    Path(name).write_bytes(MALICIOUS_PICKLE)
    text = render_sarif(modelshield.scan(name))
    text.encode("utf-8")  # a lone surrogate would make this raise
    document = json.loads(text)
    validate(document)
    [result] = document["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bad%FFname.pkl"
    assert "bad\\udcffname.pkl" in result["message"]["text"]
