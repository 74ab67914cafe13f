"""ONNX: real exporter and onnx.helper output is clean (external data only informs); custom domains,
escaping external data paths and lying tensors are found with their rule and their node or tensor."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import onnx
import pytest
from tests.samples import onnx_samples as samples

from modelshield import FileResult, Verdict, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import onnx as onnx_format


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def ids_and_details(file: FileResult) -> list[tuple[str, str | None]]:
    return sorted((f.rule_id, f.location.detail) for f in file.findings)


@pytest.mark.parametrize("build", [samples.helper_model, samples.local_function], ids=["helper", "function"])
def test_helper_models_are_clean(tmp_path: Path, build: samples.SampleBuilder) -> None:
    file = scan_one(build(tmp_path))
    assert (file.tree.format, file.findings, file.issues, file.verdict) == ("onnx", (), (), Verdict.CLEAN)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_torch_onnx_export_is_clean(tmp_path: Path, dynamo: bool) -> None:
    path = samples.torch_exported(tmp_path, dynamo=dynamo)
    onnx.checker.check_model(onnx.load(str(path)))
    file = scan_one(path)
    assert file.tree.format == "onnx"
    assert file.issues == ()
    assert {f.rule_id for f in file.findings} <= {"ONNX-EXTERNAL-DATA"}
    assert file.verdict is Verdict.CLEAN


def test_external_data_saved_by_onnx_is_only_information(tmp_path: Path) -> None:
    path = samples.external_model(tmp_path)
    onnx.load(str(path))  # onnx itself accepts the layout
    file = scan_one(path)
    (finding,) = file.findings
    assert (finding.rule_id, finding.severity.value, finding.evidence) == (
        "ONNX-EXTERNAL-DATA", "info", "external.onnx.data"
    )  # fmt: skip
    assert file.verdict is Verdict.CLEAN


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (samples.custom_domain, [("ONNX-CUSTOM-DOMAIN", "evil_node")]),
        (samples.nested_custom, [("ONNX-CUSTOM-DOMAIN", "deep_evil")]),
        (samples.unknown_op, [("ONNX-UNKNOWN-OP", "odd_node")]),
        (samples.contrib_op, [("ONNX-CONTRIB-OP", "gelu")]),
        (samples.wrong_raw_size, [("ONNX-TENSOR-SIZE", "short_w")]),
        (
            samples.external_location("../../etc/passwd"),
            [("ONNX-EXTERNAL-DATA", "leak"), ("ONNX-EXTERNAL-DATA-PATH", "leak")],
        ),
        (
            samples.external_location("/etc/shadow"),
            [("ONNX-EXTERNAL-DATA", "leak"), ("ONNX-EXTERNAL-DATA-PATH", "leak")],
        ),
        (
            samples.external_location("C:\\Windows\\win.ini"),
            [("ONNX-EXTERNAL-DATA", "leak"), ("ONNX-EXTERNAL-DATA-PATH", "leak")],
        ),
        (
            samples.external_location("w.bin", offset=str(1 << 62), length=str(1 << 62)),
            [("ONNX-EXTERNAL-DATA", "leak"), ("ONNX-EXTERNAL-DATA-RANGE", "leak")],
        ),
        (samples.external_location(""), [("ONNX-EXTERNAL-DATA", "leak"), ("ONNX-MALFORMED", "leak")]),
    ],
    ids=[
        "custom",
        "nested",
        "unknown",
        "contrib",
        "raw-size",
        "traversal",
        "absolute",
        "windows",
        "overflow",
        "no-location",
    ],
)
def test_hostile_models_name_rule_and_node(
    tmp_path: Path, build: samples.SampleBuilder, expected: list[tuple[str, str]]
) -> None:
    file = scan_one(build(tmp_path))
    assert file.tree.format == "onnx"
    assert ids_and_details(file) == expected
    assert all(f.location.offset is not None for f in file.findings)


def test_nested_custom_op_names_its_path(tmp_path: Path) -> None:
    (finding,) = scan_one(samples.nested_custom(tmp_path)).findings
    assert "node 'outer_loop' › node 'inner_if'" in finding.message
    assert finding.evidence == "evil.ops:Backdoor (2 nodes)"  # the then and else branches


def test_truncated_model_is_malformed_not_clean(tmp_path: Path) -> None:
    file = scan_one(samples.truncated(tmp_path))
    assert file.tree.format == "onnx"
    assert [f.rule_id for f in file.findings] == ["ONNX-MALFORMED"]
    assert file.verdict is Verdict.SUSPICIOUS
    assert [i.kind for i in file.issues] == ["partial"]


def test_sniff_refuses_random_data_and_other_protobufs() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        data = bytes([0x08, rng.randrange(1, 12)]) + rng.randbytes(rng.randrange(0, 200))
        assert not onnx_format.sniff(BufferBlob(data, ("r",))), data.hex()
    saved_model = b"\x08\x01\x12\x04\x0a\x02\x08\x01"  # SavedModel: schema version, meta_graphs
    graph_def = b"\x0a\x0c\x0a\x01a\x12\x07Const\x00"[:-1]
    for data in (saved_model, graph_def, b"", b"\x08\x07"):
        assert not onnx_format.sniff(BufferBlob(data, ("p",)))
    assert onnx_format.sniff(BufferBlob(samples.benign_model().SerializeToString(), ("m",)))


def test_hostile_depth_is_bounded_and_reported(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"], name="leaf")], "g", [], [])
    for level in range(25):  # 75 messages deep: under protobuf's limit of 100, over ours
        node = onnx.helper.make_node("If", ["c"], ["y"], name=f"if{level}", then_branch=graph)
        graph = onnx.helper.make_graph([node], "g", [], [])
    path = samples.save(onnx.helper.make_model(graph), tmp_path / "deep.onnx")
    file = scan_one(path)
    assert [f.rule_id for f in file.findings] == ["ONNX-MALFORMED"]
    assert "nested more than" in file.findings[0].message
    assert file.verdict is Verdict.SUSPICIOUS


def test_too_many_dims_stop_the_walk(tmp_path: Path) -> None:
    tensor = onnx.TensorProto(name="wide", data_type=onnx.TensorProto.FLOAT, dims=[1] * 200)
    node = onnx.helper.make_node("Add", ["x", "wide"], ["y"], name="add")
    graph = onnx.helper.make_graph([node], "g", [], [], initializer=[tensor])
    file = scan_one(samples.save(onnx.helper.make_model(graph), tmp_path / "wide.onnx"))
    assert [f.rule_id for f in file.findings] == ["ONNX-MALFORMED"]
    assert "more than 64" in file.findings[0].message


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """A 64 MB initializer is stepped over: the scan's peak memory stays far below the tensor's size."""
    import numpy as np
    from onnx import numpy_helper

    big = numpy_helper.from_array(np.zeros((4096, 4096), dtype=np.float32), "big")
    node = onnx.helper.make_node("MatMul", ["x", "big"], ["y"], name="mm")
    graph = onnx.helper.make_graph([node], "g", [], [], initializer=[big])
    path = samples.save(onnx.helper.make_model(graph), tmp_path / "big.onnx")
    del big, graph
    tracemalloc.start()
    try:
        file = scan_one(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)
    assert peak < 8 * 1024 * 1024


def test_many_functions_and_unknown_fields_do_not_hide_a_model(tmp_path: Path) -> None:
    functions = [
        onnx.helper.make_function(
            "local.fns", f"F{i}", ["a"], ["b"], [onnx.helper.make_node("Relu", ["a"], ["b"])], samples.OPSET
        )
        for i in range(300)
    ]
    nodes = [onnx.helper.make_node("Shell", ["x"], ["y"], name="evil_node", domain="evil.ops")]
    model = samples._model(nodes, functions=functions)
    data = model.SerializeToString() + bytes([(99 << 3 | 2) & 0x7F | 0x80, 99 >> 4, 3]) + b"abc"
    onnx.ModelProto.FromString(data)  # protobuf skips the unknown field 99
    path = tmp_path / "functions.onnx"
    path.write_bytes(data)
    assert ids_and_details(scan_one(path)) == [("ONNX-CUSTOM-DOMAIN", "evil_node")]
