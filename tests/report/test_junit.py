"""The JUnit XML report: one case per file; malicious and suspicious files fail, unscanned ones error."""

from __future__ import annotations

import pickle
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

import modelshield
from modelshield.engine.findings import Location, ScanIssue, Suppression
from modelshield.engine.result import ScanResult
from modelshield.report.junit import render_junit, xml_text

MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
HOSTILE_NAME = "<script>&\x1b]0;x\x07.pkl"


def write_samples(root: Path) -> None:
    (root / "evil.pkl").write_bytes(MALICIOUS_PICKLE)
    with zipfile.ZipFile(root / "bundle.zip", "w") as archive:
        archive.writestr("archive/data.pkl", MALICIOUS_PICKLE)
    (root / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    # A link out of the scanned tree is never followed: the file is reported as not scanned.
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "escape.bin").symlink_to(outside / "secret.bin")
    (root / HOSTILE_NAME).write_bytes(MALICIOUS_PICKLE)


@pytest.fixture
def scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScanResult:
    root = tmp_path / "models"
    root.mkdir()
    write_samples(root)
    monkeypatch.chdir(root)
    return modelshield.scan(".")


def cases(document: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in document.iter("testcase")}


def test_one_suite_one_case_per_file_with_counts(scanned: ScanResult) -> None:
    root = ET.fromstring(render_junit(scanned))
    [suite] = root.findall("testsuite")
    assert suite.attrib["tests"] == str(len(scanned.files)) == "5"
    assert suite.attrib["failures"] == "3"
    assert suite.attrib["errors"] == "1"
    assert suite.attrib["skipped"] == "0"
    assert all(case.attrib["classname"] == "modelshield" for case in suite.iter("testcase"))
    assert not list(suite.iter("skipped"))


def test_malicious_file_fails_with_its_worst_finding(scanned: ScanResult) -> None:
    case = cases(ET.fromstring(render_junit(scanned)))["bundle.zip"]
    failure = case.find("failure")
    assert failure is not None
    assert failure.attrib["type"] == "PICKLE-DANGEROUS-CALL"
    assert failure.attrib["message"].startswith("CRITICAL PICKLE-DANGEROUS-CALL: ")
    file = scanned.files[[f.path for f in scanned.files].index("bundle.zip")]
    for finding in file.findings:
        assert finding.rule_id in (failure.text or "")
    assert "bundle.zip › archive/data.pkl › opcode #4 REDUCE" in (failure.text or "")


def test_clean_file_passes_and_unscanned_file_errors(scanned: ScanResult) -> None:
    by_name = cases(ET.fromstring(render_junit(scanned)))
    assert list(by_name["clean.pkl"]) == []
    error = by_name["escape.bin"].find("error")
    assert error is not None
    assert "outside the scanned tree" in error.attrib["message"]
    assert by_name["escape.bin"].find("failure") is None


def test_control_characters_in_names_keep_the_xml_valid(scanned: ScanResult) -> None:
    text = render_junit(scanned)
    assert "\x1b" not in text and "\x07" not in text
    by_name = cases(ET.fromstring(text))
    assert "<script>&\\u001b]0;x\\u0007.pkl" in by_name


def test_suppressed_findings_stay_visible_but_do_not_fail(scanned: ScanResult) -> None:
    file = scanned.files[[f.path for f in scanned.files].index("evil.pkl")]
    reason = Suppression("vetted fixture", "policy.toml")
    quiet = replace(file, findings=tuple(replace(f, suppression=reason) for f in file.findings))
    case = cases(ET.fromstring(render_junit(replace(scanned, files=(quiet,)))))["evil.pkl"]
    assert case.find("failure") is None
    out = case.find("system-out")
    assert out is not None
    assert "suppressed: vetted fixture" in (out.text or "")


def test_input_issues_are_error_cases(scanned: ScanResult) -> None:
    issue = ScanIssue("io", "cannot read", Location(("gone.pt",)))
    root = ET.fromstring(render_junit(replace(scanned, files=(), input_issues=(issue,))))
    [case] = root.iter("testcase")
    assert case.attrib["name"] == "gone.pt"
    assert case.find("error") is not None


def test_xml_text_escapes_only_what_xml_forbids() -> None:
    assert xml_text("a\tb\nc\x00d\ud800e\ufffe") == "a\tb\nc\\u0000d\\ud800e\\ufffe"
