"""Keras v3 `.keras`: objects config.json resolves (CVE-2025-1550 and later bypasses), Lambda bytecode
(CVE-2024-3660), embedded torch modules."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tests.samples import keras_samples as ks
from tests.samples.pickles import G, call, program

from modelshield import FileResult, Severity, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import keras


def scan_file(path: Path) -> FileResult:
    return scan(path, compute_hash=False).files[0]


def by_rule(result: FileResult) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for finding in result.findings:
        out.setdefault(finding.rule_id, set()).add(finding.location.detail)
    return out


def test_real_keras_save_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # keras reads it once, at its first import
    pytest.importorskip("keras")
    result = scan_file(ks.saved_model(tmp_path))
    assert result.tree.format == "keras"
    assert result.findings == ()
    assert result.issues == ()  # the weights HDF5 is walked in an isolated child and is clean


def test_cve_2025_1550_module_and_class_name(tmp_path: Path) -> None:
    result = scan_file(ks.write_keras(tmp_path, ks.OS_SYSTEM))
    assert by_rule(result) == {"KERAS-DANGEROUS-OBJECT": {"config.layers[1]"}}
    [finding] = result.findings
    assert finding.severity is Severity.CRITICAL
    assert finding.location.chain[1:] == ("config.json",)
    assert "os.system" in finding.message


def test_builtin_function_and_keras_side_effects(tmp_path: Path) -> None:
    evaluated = scan_file(ks.write_keras(tmp_path, ks.BUILTIN_EVAL, "eval.keras"))
    assert by_rule(evaluated) == {"KERAS-DANGEROUS-OBJECT": {"config.layers[1].config.activation"}}
    fetched = scan_file(ks.write_keras(tmp_path, ks.GET_FILE, "getfile.keras"))
    assert by_rule(fetched) == {"KERAS-DANGEROUS-OBJECT": {"config.layers[0]"}}


def test_custom_objects_are_medium(tmp_path: Path) -> None:
    custom = scan_file(ks.write_keras(tmp_path, ks.CUSTOM, "custom.keras"))
    assert by_rule(custom) == {"KERAS-CUSTOM-OBJECT": {"config.layers[1] (Attention attention)"}}
    assert {f.severity for f in custom.findings} == {Severity.MEDIUM}
    registered = scan_file(ks.write_keras(tmp_path, ks.REGISTERED, "registered.keras"))
    assert by_rule(registered) == {"KERAS-CUSTOM-OBJECT": {"config.layers[0] (MyLayer m)"}}


def test_lambda_bytecode_is_read_not_run(tmp_path: Path) -> None:
    benign = scan_file(ks.write_keras(tmp_path, ks.LAMBDA_BENIGN, "lambda.keras"))
    assert by_rule(benign) == {"KERAS-LAMBDA": {"config.layers[1].config.function"}}
    assert {f.severity for f in benign.findings} == {Severity.HIGH}
    hostile = scan_file(ks.write_keras(tmp_path, ks.LAMBDA_OS, "lambda_os.keras"))
    [finding] = hostile.findings
    assert finding.rule_id == "KERAS-LAMBDA" and finding.severity is Severity.CRITICAL
    assert "os" in finding.message and "system" in finding.message


def test_torch_module_wrapper_is_scanned_as_child(tmp_path: Path) -> None:
    payload = program([call(G("os", "system"), "true")], proto=2)
    result = scan_file(ks.write_keras(tmp_path, ks.model_config(ks.torch_wrapper(payload)), "wrap.keras"))
    rules = by_rule(result)
    assert rules["KERAS-TORCH-MODULE"] == {"config.layers[0] (TorchModuleWrapper torch_module_wrapper)"}
    dangerous = [f for f in result.findings if f.rule_id == "PICKLE-DANGEROUS-CALL"]
    assert dangerous and dangerous[0].location.chain[1:] == (
        "config.json",
        "config.layers[0] (TorchModuleWrapper torch_module_wrapper) module",
    )


def test_sniff_needs_config_and_metadata() -> None:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
    assert not keras.sniff(BufferBlob(buffer.getvalue(), ("x",)))
    assert keras.sniff(BufferBlob(ks.keras_bytes(ks.CUSTOM), ("x",)))
