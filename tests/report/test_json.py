"""The JSON report: schema-valid, stable key order, every field of the result carried over."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from modelshield.engine.findings import Category, Confidence, Finding, Location, ScanIssue, Severity
from modelshield.engine.result import SCHEMA_VERSION, FileResult, FormatNode, ScanResult
from modelshield.report.json import render_json
from modelshield.rules.pickle import DANGEROUS_CALL


def load_schema() -> dict[str, Any]:
    text = resources.files("modelshield").joinpath("schemas/scan-result.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(document: dict[str, Any]) -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)


DANGEROUS = DANGEROUS_CALL.at(
    Location(("model.pt", "archive/data.pkl"), offset=12, opcode_index=4, opcode="REDUCE"),
    "os.system is called when the pickle is loaded",
    evidence="os.system('true')",
)
UNREGISTERED = Finding(
    rule_id="TEST-NOT-IN-REGISTRY",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    message="a finding whose rule is not in the registry",
    location=Location(("model.pt",), detail="header"),
)
TRUNCATED = ScanIssue(
    "limit", "nesting too deep", Location(("model.pt", "inner.zip"), detail="max_nesting_depth")
)
MALICIOUS_FILE = FileResult(
    path="model.pt",
    size=2048,
    sha256="ab" * 32,
    tree=FormatNode(
        "model.pt",
        "zip",
        2048,
        (FormatNode("archive/data.pkl", "pickle", 300), FormatNode("inner.zip", "not-scanned", 0)),
    ),
    findings=(DANGEROUS, UNREGISTERED),
    issues=(TRUNCATED,),
)
CLEAN_FILE = FileResult("ok.npy", 128, None, FormatNode("ok.npy", "numpy", 128), (), ())


def make_result(*files: FileResult, input_issues: tuple[ScanIssue, ...] = ()) -> ScanResult:
    return ScanResult(files, "0.1.0", "2026-01-01T00:00:00+00:00", 0.25, input_issues)


def test_schema_itself_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_report_with_findings_issues_and_nested_formats_validates() -> None:
    document = json.loads(render_json(make_result(MALICIOUS_FILE, CLEAN_FILE)))
    validate(document)


def test_empty_scan_validates() -> None:
    validate(json.loads(render_json(make_result())))


def test_top_level_keys_come_in_a_stable_order() -> None:
    document = json.loads(render_json(make_result(CLEAN_FILE)))
    assert list(document) == [
        "schema_version",
        "tool",
        "started_at",
        "duration_seconds",
        "verdict",
        "fully_scanned",
        "summary",
        "files",
        "errors",
    ]
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["tool"] == {"name": "modelshield", "version": "0.1.0"}


def test_rendering_is_deterministic() -> None:
    result = make_result(MALICIOUS_FILE, CLEAN_FILE)
    assert render_json(result) == render_json(result)


def test_verdict_is_the_worst_file_verdict_and_summary_counts_files_and_severities() -> None:
    document = json.loads(render_json(make_result(MALICIOUS_FILE, CLEAN_FILE)))
    assert document["verdict"] == "malicious"
    assert document["fully_scanned"] is False
    assert document["summary"] == {
        "files": 2,
        "findings": 2,
        "by_verdict": {"clean": 1, "error": 0, "suspicious": 0, "malicious": 1},
        "by_severity": {"critical": 1, "high": 0, "medium": 0, "low": 1, "info": 0},
    }


def test_finding_carries_rule_title_location_and_evidence() -> None:
    document = json.loads(render_json(make_result(MALICIOUS_FILE)))
    finding = document["files"][0]["findings"][0]
    assert finding["rule_id"] == "PICKLE-DANGEROUS-CALL"
    assert finding["title"] == DANGEROUS_CALL.title
    assert finding["severity"] == "critical"
    assert finding["category"] == "code-execution"
    assert finding["evidence"] == "os.system('true')"
    assert finding["remediation"] == DANGEROUS_CALL.remediation
    assert finding["location"] == {
        "chain": ["model.pt", "archive/data.pkl"],
        "offset": 12,
        "opcode_index": 4,
        "opcode": "REDUCE",
        "detail": None,
        "display": DANGEROUS.location.render(),
    }


def test_finding_of_an_unregistered_rule_has_a_null_title() -> None:
    document = json.loads(render_json(make_result(MALICIOUS_FILE)))
    assert document["files"][0]["findings"][1]["title"] is None


def test_file_carries_hash_format_tree_and_errors() -> None:
    document = json.loads(render_json(make_result(MALICIOUS_FILE, CLEAN_FILE)))
    malicious, clean = document["files"]
    assert malicious["sha256"] == "ab" * 32
    assert clean["sha256"] is None
    assert [child["format"] for child in malicious["formats"]["children"]] == ["pickle", "not-scanned"]
    assert malicious["errors"] == [
        {
            "kind": "limit",
            "message": "nesting too deep",
            "location": {
                "chain": ["model.pt", "inner.zip"],
                "offset": None,
                "opcode_index": None,
                "opcode": None,
                "detail": "max_nesting_depth",
                "display": TRUNCATED.location.render(),
            },
        }
    ]


def test_input_issues_are_top_level_errors_and_make_the_scan_incomplete() -> None:
    issue = ScanIssue("input", "could not list directory", Location(("models",)))
    document = json.loads(render_json(make_result(CLEAN_FILE, input_issues=(issue,))))
    validate(document)
    assert document["verdict"] == "error"
    assert document["fully_scanned"] is False
    assert document["errors"][0]["message"] == "could not list directory"


@pytest.mark.parametrize("hostile", ["evil\x1b]0;pwned\x07name", "bidi\u202eexe.pkl", "\udcff-undecodable"])
def test_hostile_names_come_out_as_ascii_escapes(hostile: str) -> None:
    file = FileResult(hostile, 1, None, FormatNode(hostile, "data", 1), (), ())
    text = render_json(make_result(file))
    assert text.isascii()
    assert "\x1b" not in text
