"""The scan entry point: directory walking, links, hashing and recognised-but-unanalysed formats."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import replace
from pathlib import Path

import pytest

import modelshield
from modelshield import (
    Category,
    Confidence,
    FileResult,
    Finding,
    FormatNode,
    Location,
    ScanIssue,
    Severity,
    Verdict,
)
from modelshield.engine.scanner import as_copy
from modelshield.errors import UsageError


def test_directories_are_walked_and_files_identified_by_content(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.txt").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (tmp_path / "README.md").write_text("# a model\n")
    result = modelshield.scan(tmp_path)
    formats = {Path(f.path).name: f.tree.format for f in result.files}
    assert formats == {"README.md": "data", "weights.txt": "pickle"}
    assert result.verdict is Verdict.CLEAN


def test_sha256_names_the_scanned_content(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    file = modelshield.scan(path).files[0]
    assert file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert modelshield.scan(path, compute_hash=False).files[0].sha256 is None


def test_links_out_of_the_scanned_tree_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(1))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "inside.pkl").write_bytes(pickle.dumps(2))
    os.symlink(outside, tree / "escape.pkl")
    os.symlink(tree / "inside.pkl", tree / "alias.pkl")
    result = modelshield.scan(tree)
    by_name = {Path(f.path).name: f for f in result.files}
    assert by_name["escape.pkl"].verdict is Verdict.ERROR
    assert "outside the scanned tree" in by_name["escape.pkl"].issues[0].message
    assert by_name["alias.pkl"].verdict is Verdict.CLEAN
    assert result.verdict is Verdict.ERROR


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        modelshield.scan(tmp_path / "nope")


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"\x1c\0\0\0TFL3" + b"\0" * 32, "tflite"),
        (b'<?xml version="1.0"?>\n<PMML version="4.4"><Header>', "xml-model"),
    ],
)
def test_formats_once_only_recognised_are_analysed_and_broken_files_never_clean(
    tmp_path: Path, content: bytes, fmt: str
) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    file = modelshield.scan(path).files[0]
    assert file.tree.format == fmt
    assert file.verdict is not Verdict.CLEAN
    assert file.issues and file.issues[0].kind != "unsupported"


@pytest.mark.parametrize("jobs", [0, -1, True])
def test_jobs_must_be_a_whole_number_of_at_least_one(tmp_path: Path, jobs: int) -> None:
    with pytest.raises(UsageError, match="jobs must be a whole number of at least 1"):
        modelshield.scan(tmp_path, jobs=jobs)


def test_a_copy_reports_its_own_path_wherever_the_original_named_itself() -> None:
    original = "models/a/config.json"
    where = Location((original, "inner"), detail=f"key auto_map in {original}")
    finding = Finding(
        rule_id="HF-REMOTE-CODE",
        severity=Severity.HIGH,
        category=Category.CODE_EXECUTION,
        confidence=Confidence.HIGH,
        message=f"{original} defines auto_map",
        location=where,
        evidence=f"{original}: auto_map",
    )
    issue = ScanIssue("limit", f"{original} is too deep", Location((original,)))
    result = FileResult(original, 9, "ab" * 32, FormatNode(original, "json", 9), (finding,), (issue,), 0.5)
    copy = as_copy(result, "models/b/config.json")
    assert copy == FileResult(
        "models/b/config.json",
        9,
        "ab" * 32,
        FormatNode("models/b/config.json", "json", 9),
        (
            replace(
                finding,
                message="models/b/config.json defines auto_map",
                location=Location(
                    ("models/b/config.json", "inner"), detail="key auto_map in models/b/config.json"
                ),
                evidence="models/b/config.json: auto_map",
            ),
        ),
        (ScanIssue("limit", "models/b/config.json is too deep", Location(("models/b/config.json",))),),
        0.0,
    )
