"""TorchServe .mar: built-in handlers are clean; custom handler code, model files, pip installs named."""

from __future__ import annotations

import pickle
from pathlib import Path

from tests.samples import torch_samples as samples

from modelshield import FileResult, Severity, Verdict, scan


def scan_one(path: Path) -> FileResult:
    return scan(path, compute_hash=False).files[0]


def hits(file: FileResult) -> set[tuple[str, tuple[str, ...], str | None]]:
    return {(f.rule_id, f.location.chain[1:], f.location.detail) for f in file.findings}


def test_builtin_handler_archive_is_clean(tmp_path: Path) -> None:
    file = scan_one(samples.mar(tmp_path))
    assert file.tree.format == "torchserve"
    assert file.findings == () and file.issues == ()
    weights = next(c for c in file.tree.children if c.name == "weights.pt")
    assert weights.format == "pytorch"


def test_custom_handler_model_file_and_requirements(tmp_path: Path) -> None:
    extra = {
        "my_handler.py": b"from ts.torch_handler.base_handler import BaseHandler\n",
        "model.py": b"import torch\n",
        "requirements.txt": b"numpy==1.26.4\nhelper @ https://example.invalid/helper.tar.gz\n",
    }
    file = scan_one(samples.mar(tmp_path, handler="my_handler.py:handle", extra=extra))
    assert hits(file) == {
        ("TORCHSERVE-CUSTOM-HANDLER", ("my_handler.py",), "manifest model.handler"),
        ("TORCHSERVE-CUSTOM-HANDLER", ("model.py",), "manifest model.modelFile"),
        ("TORCHSERVE-REQUIREMENTS", ("requirements.txt",), "manifest model.requirementsFile"),
        ("REQUIREMENTS-REMOTE-SOURCE", ("requirements.txt",), "line 2"),
    }
    assert all(f.severity is Severity.MEDIUM for f in file.findings)
    requirements = next(f for f in file.findings if f.rule_id == "TORCHSERVE-REQUIREMENTS")
    assert "numpy==1.26.4" in requirements.evidence
    assert file.verdict is Verdict.SUSPICIOUS


def test_handler_not_shipped_by_torchserve(tmp_path: Path) -> None:
    file = scan_one(samples.mar(tmp_path, handler="somewhere.else:handle"))
    assert hits(file) == {("TORCHSERVE-CUSTOM-HANDLER", ("MAR-INF/MANIFEST.json",), "model.handler")}


def test_serialized_model_payload_is_found_inside(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = samples.malicious_zip_pt(tmp_path, marker).read_bytes()
    file = scan_one(samples.mar(tmp_path, extra={"extra.pt": evil, "state.pkl": pickle.dumps({"a": 1})}))
    assert ("PICKLE-DANGEROUS-CALL", ("extra.pt", "evil/data.pkl"), None) in hits(file)
    assert file.verdict is Verdict.MALICIOUS


def test_manifest_names_a_missing_model(tmp_path: Path) -> None:
    source = samples.mar(tmp_path)
    path = samples.rewrite_zip(source, tmp_path / "nomodel.mar", drop=("weights.pt",))
    file = scan_one(path)
    assert hits(file) == {("TORCHSERVE-MISSING-FILE", ("MAR-INF/MANIFEST.json",), "model.serializedFile")}
