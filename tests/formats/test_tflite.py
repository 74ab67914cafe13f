"""TensorFlow Lite: a schema-valid model is clean; custom and Flex ops are named and graded; broken
FlatBuffers and out-of-range indices or buffers are integrity findings at their place."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.samples import tflite_samples as samples

from modelshield import FileResult, Severity, Verdict, scan


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def test_plain_model_and_large_layout_are_clean(tmp_path: Path) -> None:
    for name, data in (("plain.tflite", samples.model()), ("large.tflite", samples.large_layout())):
        file = scan_one(samples.write(tmp_path, name, data))
        assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN), name
        assert file.tree.format == "tflite"


@pytest.mark.parametrize(
    ("custom", "severity"),
    [
        ("FlexReadFile", Severity.HIGH),
        ("FlexPyFunc", Severity.HIGH),
        ("FlexMysteryOp", Severity.MEDIUM),
        ("FlexMatMul", Severity.LOW),
    ],
)
def test_flex_ops_are_judged_with_the_tensorflow_lists(
    tmp_path: Path, custom: str, severity: Severity
) -> None:
    data = samples.model(
        codes=[(samples.BUILTIN_ADD, None), (samples.BUILTIN_CUSTOM, custom)], opcode_indices=[0, 1]
    )
    file = scan_one(samples.write(tmp_path, "flex.tflite", data))
    [finding] = file.findings
    assert (finding.rule_id, finding.severity, finding.evidence) == ("TFLITE-FLEX-OP", severity, custom)
    assert finding.location.detail == "operator_codes[1]"


def test_custom_ops_are_named(tmp_path: Path) -> None:
    data = samples.model(
        codes=[
            (samples.BUILTIN_CUSTOM, "MyKernel"),
            (samples.BUILTIN_CUSTOM, "TFLite_Detection_PostProcess"),
        ],
        opcode_indices=[0, 1],
    )
    file = scan_one(samples.write(tmp_path, "custom.tflite", data))
    assert [(f.rule_id, f.severity, f.evidence) for f in file.findings] == [
        ("TFLITE-CUSTOM-OP", Severity.MEDIUM, "MyKernel"),
        ("TFLITE-CUSTOM-OP", Severity.LOW, "TFLite_Detection_PostProcess"),
    ]


def test_out_of_range_indices(tmp_path: Path) -> None:
    file = scan_one(
        samples.write(tmp_path, "i.tflite", samples.model(opcode_indices=[0, 7], tensor_buffers=[1, 9]))
    )
    assert sorted((f.rule_id, f.location.detail) for f in file.findings) == [
        ("TFLITE-MALFORMED", "subgraphs[0].operators[1]"),
        ("TFLITE-MALFORMED", "subgraphs[0].tensors[1]"),
    ]


@pytest.mark.parametrize("kind", ["out_of_range", "overlap"])
def test_large_layout_buffers_outside_or_overlapping(tmp_path: Path, kind: str) -> None:
    data = samples.large_layout(**{kind: True})
    file = scan_one(samples.write(tmp_path, "l.tflite", data))
    assert [(f.rule_id, f.location.detail) for f in file.findings] == [("TFLITE-BUFFER-LAYOUT", "buffers[2]")]


def test_broken_flatbuffer_is_malformed_and_not_clean(tmp_path: Path) -> None:
    file = scan_one(samples.write(tmp_path, "t.tflite", samples.truncated()))
    assert [f.rule_id for f in file.findings] == ["TFLITE-MALFORMED"]
    assert file.issues and file.verdict is Verdict.SUSPICIOUS


def test_flex_print_into_a_file_through_large_layout_options(tmp_path: Path) -> None:
    """The >2 GB layout keeps an operator's NodeDef after the FlatBuffer (large_custom_options_offset)."""
    target = b"file:///tmp/modelshield-marker.txt"
    file = scan_one(samples.write(tmp_path, "p.tflite", samples.flex_print_large_options(target)))
    high = [(f.rule_id, f.location.detail, f.evidence) for f in file.findings if f.severity is Severity.HIGH]
    assert high == [("TFLITE-FLEX-OP", "subgraphs[0].operators[0]", target.decode())]


def test_large_layout_options_past_the_end(tmp_path: Path) -> None:
    data = samples.flex_print_large_options(b"file:///x", out_of_range=True)
    file = scan_one(samples.write(tmp_path, "o.tflite", data))
    assert ("TFLITE-BUFFER-LAYOUT", "subgraphs[0].operators[0]") in [
        (f.rule_id, f.location.detail) for f in file.findings
    ]
