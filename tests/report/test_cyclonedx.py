"""The CycloneDX ML-BOM: valid CycloneDX 1.6, one model component per file, findings as vulnerabilities."""

from __future__ import annotations

import json
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from tests.samples import pickles as pk

from modelshield import scan
from modelshield.cli import EXIT_USAGE, cli
from modelshield.engine.findings import Location, ScanIssue, Suppression
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.errors import UsageError
from modelshield.report import REPORT_FORMATS, renderer_for
from modelshield.report.cyclonedx import format_chains, render_cyclonedx
from modelshield.rules.pickle import DANGEROUS_CALL

DANGEROUS = DANGEROUS_CALL.at(
    Location(("model.pt", "archive/data.pkl"), offset=12, opcode_index=4, opcode="REDUCE"),
    "os.system is called when the pickle is loaded",
    evidence="os.system('true')",
)
SUPPRESSED = replace(
    DANGEROUS_CALL.at(Location(("model.pt", "archive/other.pkl")), "a suppressed call"),
    suppression=Suppression(reason="reviewed by the ML team", source="policy.toml"),
)
TRUNCATED = ScanIssue("limit", "nesting too deep", Location(("model.pt", "inner.zip"), detail="depth"))
MALICIOUS_FILE = FileResult(
    path="models/model.pt",
    size=2048,
    sha256="ab" * 32,
    tree=FormatNode(
        "model.pt",
        "pytorch-zip",
        2048,
        (
            FormatNode("archive/data.pkl", "pickle", 300),
            FormatNode("archive/data/0", "data", 1000),
            FormatNode("inner.zip", "zip", 500, (FormatNode("x.npy", "numpy", 100),)),
        ),
    ),
    findings=(DANGEROUS, SUPPRESSED),
    issues=(TRUNCATED,),
)
CLEAN_FILE = FileResult("ok.npy", 128, "cd" * 32, FormatNode("ok.npy", "numpy", 128), (), ())
UNHASHED_FILE = FileResult("ok.npy", 128, None, FormatNode("ok.npy", "data", 128), (), ())
RESULT = ScanResult(
    files=(MALICIOUS_FILE, CLEAN_FILE, UNHASHED_FILE),
    tool_version="9.8.7",
    started_at="2025-01-02T03:04:05+00:00",
    duration_seconds=1.5,
    input_issues=(ScanIssue("not-scanned", "link leaves the tree", Location(("link",))),),
)


def validated(text: str) -> dict[str, Any]:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    document: dict[str, Any] = json.loads(text)
    return document


def props(item: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in item.get("properties", []) if p["name"] == f"modelshield:{name}"]


def test_registered_as_a_report_format() -> None:
    assert "cyclonedx" in REPORT_FORMATS
    assert renderer_for("cyclonedx") is render_cyclonedx


def test_document_is_valid_cyclonedx_1_6_with_the_tool_in_metadata() -> None:
    document = validated(render_cyclonedx(RESULT))
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.6"
    assert document["metadata"]["tools"]["components"] == [
        {"bom-ref": "modelshield@9.8.7", "name": "modelshield", "type": "application", "version": "9.8.7"}
    ]
    assert document["metadata"]["timestamp"].startswith("2025-01-02T03:04:05")
    assert props(document["metadata"], "verdict") == ["malicious"]
    assert props(document["metadata"], "fully-scanned") == ["false"]
    assert props(document["metadata"], "not-scanned") == ["not-scanned: link leaves the tree (link)"]


def test_each_file_is_a_model_component_with_hash_format_tree_verdict_and_counts() -> None:
    document = validated(render_cyclonedx(RESULT))
    components = {c["bom-ref"]: c for c in document["components"]}
    assert set(components) == {"file:models/model.pt", "file:ok.npy", "file:ok.npy#2"}
    model = components["file:models/model.pt"]
    assert model["type"] == "machine-learning-model"
    assert model["name"] == "model.pt"
    assert model["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert props(model, "path") == ["models/model.pt"]
    assert sorted(props(model, "format")) == ["pytorch-zip › pickle", "pytorch-zip › zip › numpy"]
    assert props(model, "verdict") == ["malicious"]
    assert props(model, "fully-scanned") == ["false"]
    assert props(model, "findings") == ["1"]
    assert props(model, "findings:critical") == ["1"]
    assert props(model, "findings:suppressed") == ["1"]
    assert props(model, "not-scanned") == ["limit: nesting too deep (model.pt › inner.zip › depth)"]
    clean = components["file:ok.npy"]
    assert props(clean, "verdict") == ["clean"]
    assert props(clean, "findings") == ["0"]
    assert "hashes" not in components["file:ok.npy#2"]
    assert props(components["file:ok.npy#2"], "format") == ["data"]


def test_findings_are_vulnerabilities_rated_by_modelshield_affecting_their_component() -> None:
    document = validated(render_cyclonedx(RESULT))
    vulnerabilities = {v["bom-ref"]: v for v in document["vulnerabilities"]}
    assert set(vulnerabilities) == {"file:models/model.pt#finding-1", "file:models/model.pt#finding-2"}
    first = vulnerabilities["file:models/model.pt#finding-1"]
    assert first["id"] == "PICKLE-DANGEROUS-CALL"
    assert first["source"] == {"name": "modelshield"}
    assert first["ratings"] == [
        {"method": "other", "severity": "critical", "source": {"name": "modelshield"}}
    ]
    assert first["description"] == "os.system is called when the pickle is loaded"
    assert first["recommendation"] == DANGEROUS_CALL.remediation
    assert first["cwes"] == [502]
    assert first["affects"] == [{"ref": "file:models/model.pt"}]
    assert props(first, "location") == ["model.pt › archive/data.pkl › opcode #4 REDUCE, offset 12"]
    assert props(first, "evidence") == ["os.system('true')"]
    assert props(first, "category") == ["code-execution"]
    second = vulnerabilities["file:models/model.pt#finding-2"]
    assert props(second, "suppression") == ["active: reviewed by the ML team (policy.toml)"]


def test_a_real_scan_renders_a_valid_bom(tmp_path: Path) -> None:
    (tmp_path / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (tmp_path / "evil.pkl").write_bytes(pk.os_system(str(tmp_path / "marker")))
    document = validated(render_cyclonedx(scan(tmp_path)))
    by_name = {c["name"]: c for c in document["components"]}
    assert props(by_name["clean.pkl"], "verdict") == ["clean"]
    assert props(by_name["evil.pkl"], "verdict") == ["malicious"]
    assert {v["id"] for v in document["vulnerabilities"]} == {"PICKLE-DANGEROUS-CALL"}
    assert {v["affects"][0]["ref"] for v in document["vulnerabilities"]} == {by_name["evil.pkl"]["bom-ref"]}


def test_format_chains_leave_out_plain_data_members() -> None:
    assert format_chains(MALICIOUS_FILE.tree) == ["pytorch-zip › pickle", "pytorch-zip › zip › numpy"]
    assert format_chains(FormatNode("f", "zip", 1, (FormatNode("a", "data", 1),))) == ["zip"]
    assert format_chains(FormatNode("f", "data", 1)) == ["data"]


def test_without_the_sbom_extra_the_format_fails_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cyclonedx", None)  # what `import cyclonedx` sees when not installed
    with pytest.raises(UsageError, match=r"modelshield\[sbom\]"):
        renderer_for("cyclonedx")
    with pytest.raises(UsageError, match="'sbom' extra"):
        render_cyclonedx(RESULT)


def test_cli_without_the_extra_fails_before_scanning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cyclonedx", None)
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1]))
    outcome = CliRunner().invoke(cli, ["scan", "--format", "cyclonedx", str(tmp_path)])
    assert outcome.exit_code == EXIT_USAGE
    assert "pip install 'modelshield[sbom]'" in outcome.output


def test_cli_writes_a_valid_bom(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1]))
    outcome = CliRunner().invoke(cli, ["scan", "--format", "cyclonedx", str(tmp_path / "a.pkl")])
    assert outcome.exit_code == 0, outcome.output
    document = validated(outcome.stdout)
    assert [c["name"] for c in document["components"]] == ["a.pkl"]
