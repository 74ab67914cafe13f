"""FileResult encoding for worker processes: lossless round trip, strict refusal of anything malformed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.samples.archives import zip_with
from tests.samples.pickles import os_system

import modelshield
from modelshield import Category, Confidence, FileResult, Finding, FormatNode, Location, ScanIssue, Severity
from modelshield.engine.findings import Suppression
from modelshield.engine.result_codec import (
    MAX_TREE_DEPTH,
    ResultDecodeError,
    decode_file_result,
    encode_file_result,
)


def _every_field_result() -> FileResult:
    finding = Finding(
        rule_id="PICKLE-DANGEROUS-CALL",
        severity=Severity.CRITICAL,
        category=Category.CODE_EXECUTION,
        confidence=Confidence.HIGH,
        message="calls os.system",
        location=Location(("m.zip", "a/data.pkl"), offset=7, opcode_index=3, opcode="REDUCE", detail="d"),
        evidence="os.system('x')",
        remediation="do not load",
        references=("CVE-2025-1",),
        suppression=Suppression("vetted", "policy.toml:3", "2030-01-01", expired=False),
    )
    issue = ScanIssue("limit", "too deep", Location(("m.zip",), detail="max_nesting_depth"))
    tree = FormatNode("m.zip", "zip", 40, (FormatNode("a/data.pkl", "pickle", 20),))
    return FileResult("m.zip", 40, "ab" * 32, tree, (finding,), (issue,), 0.25)


def test_every_field_survives_a_json_round_trip() -> None:
    result = _every_field_result()
    assert decode_file_result(json.loads(json.dumps(encode_file_result(result)))) == result


def test_a_real_scan_result_survives_a_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    path.write_bytes(zip_with({"archive/data.pkl": os_system(str(tmp_path / "marker"))}))
    result = modelshield.scan(path).files[0]
    assert sorted({f.rule_id for f in result.findings}) == ["PICKLE-DANGEROUS-CALL", "PYTORCH-MISSING-RECORD"]
    assert decode_file_result(json.loads(json.dumps(encode_file_result(result)))) == result


def _mutated(change: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(encode_file_result(_every_field_result())))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("sha256"), "missing keys ['sha256']"),
        (lambda d: d.update(extra=1), "unexpected keys ['extra']"),
        (lambda d: d.update(size=True), "size is not a non-negative integer"),
        (lambda d: d.update(size=-1), "size is not a non-negative integer"),
        (lambda d: d.update(sha256="AB" * 32), "sha256 is not lowercase hex"),
        (lambda d: d.update(duration_seconds="1"), "duration_seconds is not a non-negative number"),
        (lambda d: d["findings"][0].update(severity="fatal"), "severity is not one of"),
        (lambda d: d["findings"][0].update(category=["code-execution"]), "category is not one of"),
        (lambda d: d["findings"][0]["location"].update(chain=[]), "location chain is empty"),
        (lambda d: d["findings"][0]["location"].update(chain=["a", 1]), "chain is not a list of strings"),
        (lambda d: d["findings"][0].update(references=[1]), "references is not a list of strings"),
        (lambda d: d["findings"][0]["suppression"].update(expired=0), "suppression.expired is not a boolean"),
        (lambda d: d["issues"][0].update(message=None), "message is not a string"),
        (lambda d: d["tree"].update(children={}), "children is not a list"),
        (lambda d: d.update(findings=[["not", "an", "object"]]), "finding is not an object"),
    ],
)
def test_malformed_data_is_refused_with_the_reason(change: Any, message: str) -> None:
    with pytest.raises(ResultDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_file_result(_mutated(change))


def test_a_tree_nested_past_the_bound_is_refused() -> None:
    node: dict[str, Any] = {"name": "leaf", "format": "zip", "size": 0, "children": []}
    for _ in range(MAX_TREE_DEPTH + 1):
        node = {"name": "n", "format": "zip", "size": 0, "children": [node]}
    data = _mutated(lambda d: d.update(tree=node))
    with pytest.raises(ResultDecodeError, match="format tree deeper than 256 levels"):
        decode_file_result(data)


def test_something_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ResultDecodeError, match="file result is not an object"):
        decode_file_result(["m.zip"])
