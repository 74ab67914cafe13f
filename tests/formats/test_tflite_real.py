"""TensorFlow Lite models written by the real converter: float, dynamic-range and full-integer models are
clean; Flex (SELECT_TF_OPS) with ordinary ops is clean with low notes; a converter-made custom op is
named; the real interpreter (tensorflow venv, child process) runs, or refuses, the same files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.samples import tf_real

from modelshield import FileResult, Severity, Verdict, scan


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tf_real.samples_or_skip(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def proofs(real: dict[str, Path]) -> dict[str, dict[str, Any]]:
    samples = next(iter(real.values())).parent
    return tf_real.prove_in_venv(samples, dict.fromkeys(CONVERTED))


CLEAN = ("float.tflite", "dynamic_range.tflite", "int8.tflite")
CONVERTED = (*CLEAN, "flex.tflite", "flex_read_file.tflite", "flex_print_to_file.tflite", "custom_op.tflite")


def scan_one(path: Path) -> FileResult:
    [file] = scan(path, compute_hash=False).files
    assert file.tree.format == "tflite"
    return file


@pytest.mark.parametrize("name", CLEAN)
def test_converter_models_are_clean(real: dict[str, Path], name: str) -> None:
    file = scan_one(real[name])
    assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)


def graded(file: FileResult) -> list[tuple[str, Severity, str | None, str | None]]:
    return sorted((f.rule_id, f.severity, f.location.detail, f.evidence) for f in file.findings)


def test_flex_with_ordinary_ops_is_clean_with_low_notes(real: dict[str, Path]) -> None:
    """Decision: Flex only means the runtime links TensorFlow kernels; each op is judged by the
    TensorFlow lists, so ordinary ops (here string ops the builtins lack) stay low and the file clean."""
    file = scan_one(real["flex.tflite"])
    assert graded(file) == [
        ("TFLITE-FLEX-OP", Severity.LOW, "operator_codes[0]", "FlexStringLower"),
        ("TFLITE-FLEX-OP", Severity.LOW, "operator_codes[1]", "FlexStringToHashBucketFast"),
    ]
    assert file.verdict is Verdict.CLEAN


def test_flex_file_op_is_high(real: dict[str, Path]) -> None:
    """The converter accepts tf.io.read_file under SELECT_TF_OPS: the Flex delegate would read any
    host file the caller names."""
    file = scan_one(real["flex_read_file.tflite"])
    assert graded(file) == [
        ("TFLITE-FLEX-OP", Severity.LOW, "operator_codes[1]", "FlexStringLength"),
        ("TFLITE-FLEX-OP", Severity.HIGH, "operator_codes[0]", "FlexReadFile"),
    ]
    assert file.verdict is Verdict.SUSPICIOUS


def test_flex_print_into_a_file_is_high_at_its_operator(real: dict[str, Path]) -> None:
    """PrintV2 is ordinary (low) by its code; the operator's NodeDef says output_stream file://…, so
    that operator is high."""
    file = scan_one(real["flex_print_to_file.tflite"])
    target = f"file://{real['flex_print_to_file.tflite'].parent / tf_real.MARKERS / 'flex_print.txt'}"
    assert graded(file) == [
        ("TFLITE-FLEX-OP", Severity.LOW, "operator_codes[1]", "FlexStringFormat"),
        ("TFLITE-FLEX-OP", Severity.LOW, "operator_codes[2]", "FlexPrintV2"),
        ("TFLITE-FLEX-OP", Severity.HIGH, "subgraphs[0].operators[2]", target),
    ]
    assert file.verdict is Verdict.SUSPICIOUS


def test_converter_custom_ops_are_named(real: dict[str, Path]) -> None:
    """allow_custom_ops emits the TensorFlow ops as custom ops: whatever kernel the loader registers
    under those names runs, so they are medium."""
    file = scan_one(real["custom_op.tflite"])
    assert graded(file) == [
        ("TFLITE-CUSTOM-OP", Severity.MEDIUM, "operator_codes[0]", "StringLower"),
        ("TFLITE-CUSTOM-OP", Severity.MEDIUM, "operator_codes[1]", "StringToHashBucketFast"),
    ]
    assert file.verdict is Verdict.SUSPICIOUS


def test_real_interpreter_runs_the_clean_models(proofs: dict[str, dict[str, Any]]) -> None:
    for name in CLEAN:
        assert proofs[name]["loaded"] is True, proofs[name]
        [[probabilities]] = proofs[name]["outputs"]
        assert len(probabilities) == 3, name


def test_real_interpreter_reads_flex_and_custom_ops_as_we_do(proofs: dict[str, dict[str, Any]]) -> None:
    """The interpreter parses the models and stops where we report: it wants the Flex delegate for the
    Select TF ops (tensorflow-cpu 2.21's Python interpreter no longer links it), and a registered
    kernel for the custom op."""
    for flex in ("flex.tflite", "flex_read_file.tflite", "flex_print_to_file.tflite"):
        assert proofs[flex]["loaded"] is False
        assert "Select TensorFlow op(s)" in proofs[flex]["error"]
        assert "Flex delegate" in proofs[flex]["error"]
    assert proofs["custom_op.tflite"]["loaded"] is False
    assert "Encountered unresolved custom op: StringLower" in proofs["custom_op.tflite"]["error"]
