"""TensorFlow graphs: Keras-shaped SavedModels and frozen graphs are clean (checkpoint ops included);
file, Python, network and debugger ops are found with their node, in the graph or in a function."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.samples import onnx_samples
from tests.samples import tf_samples as samples

from modelshield import FileResult, Verdict, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import onnx as onnx_format
from modelshield.formats import tensorflow as tf_format
from modelshield.policy.model import Policy


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def ids_and_details(file: FileResult) -> list[tuple[str, str | None]]:
    return sorted((f.rule_id, f.location.detail) for f in file.findings)


@pytest.mark.parametrize(
    "build", [samples.benign_saved_model, samples.benign_frozen_graph], ids=["saved-model", "frozen"]
)
def test_ordinary_graphs_are_clean(tmp_path: Path, build: samples.SampleBuilder) -> None:
    file = scan_one(build(tmp_path))
    assert (file.tree.format, file.findings, file.issues, file.verdict) == (
        "tensorflow", (), (), Verdict.CLEAN
    )  # fmt: skip


@pytest.mark.parametrize(
    ("build", "expected", "label"),
    [
        (
            samples.RULE_SAMPLES["TF-PYTHON-CALL"],
            [("TF-PYTHON-CALL", "py")],
            "function '__inference_call_42'",
        ),
        (
            samples.RULE_SAMPLES["TF-FILE-ACCESS"],
            [("TF-FILE-ACCESS", "leak")],
            "function '__inference_call_42'",
        ),
        (samples.RULE_SAMPLES["TF-NETWORK-OP"], [("TF-NETWORK-OP", "remote")], "(graph)"),
        (samples.RULE_SAMPLES["TF-DEBUG-OP"], [("TF-DEBUG-OP", "tap")], "(graph)"),
        (samples.RULE_SAMPLES["TF-UNKNOWN-OP"], [("TF-UNKNOWN-OP", "custom")], "(graph)"),
        (
            samples.hostile_frozen_graph(
                samples.node("w", "WriteFile", "f", "c"),
                samples.node(
                    "p", "PrintV2", "x", attrs=samples.attr_string("output_stream", "file:///tmp/o")
                ),
                samples.node("e", "EagerPyFunc", "x"),
            ),
            [("TF-FILE-ACCESS", "p"), ("TF-FILE-ACCESS", "w"), ("TF-PYTHON-CALL", "e")],
            "(graph)",
        ),
    ],
    ids=["pyfunc", "readfile", "network", "debug", "unknown", "several"],
)
def test_hostile_ops_name_rule_and_node(
    tmp_path: Path, build: samples.SampleBuilder, expected: list[tuple[str, str]], label: str
) -> None:
    file = scan_one(build(tmp_path))
    assert file.tree.format == "tensorflow"
    assert ids_and_details(file) == expected
    assert all(label in f.message and f.location.offset is not None for f in file.findings)
    assert file.verdict is Verdict.SUSPICIOUS


def test_repeated_op_is_one_finding(tmp_path: Path) -> None:
    nodes = [samples.node(f"read{i}", "ReadFile", "p") for i in range(500)]
    file = scan_one(samples.hostile_frozen_graph(*nodes)(tmp_path))
    assert ids_and_details(file) == [("TF-FILE-ACCESS", "read0")]


def test_truncated_saved_model_is_malformed_not_clean(tmp_path: Path) -> None:
    file = scan_one(samples.RULE_SAMPLES["TF-MALFORMED"](tmp_path))
    assert file.tree.format == "tensorflow"
    assert [f.rule_id for f in file.findings] == ["TF-MALFORMED"]
    assert [i.kind for i in file.issues] == ["partial"]


def test_sniff_is_strict() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        data = bytes([rng.choice((0x08, 0x0A))]) + rng.randbytes(rng.randrange(1, 200))
        assert not tf_format.sniff(BufferBlob(data, ("r",))), data.hex()
    onnx_model = onnx_samples.benign_model().SerializeToString()
    assert not tf_format.sniff(BufferBlob(onnx_model, ("m.onnx",)))
    for text in (b"\nimport os\n", b"\n\n# title\n", b"\x08\x02\x12\x00"):
        assert not tf_format.sniff(BufferBlob(text, ("t",)))
    graph = samples.saved_model(samples.keras_like_graph())
    assert tf_format.sniff(BufferBlob(graph, ("saved_model.pb",)))
    assert not onnx_format.sniff(BufferBlob(graph, ("saved_model.pb",)))


def test_policy_tensorflow_ops_allow_and_deny(tmp_path: Path) -> None:
    path = samples.hostile_frozen_graph(
        samples.node("custom", "MyCustomOp", "input"),
        samples.node("read", "ReadFile", "p"),
        samples.node("conv", "Conv2D", "input", "w"),
    )(tmp_path)
    policy = Policy(
        allowed_tensorflow_ops=frozenset({"MyCustomOp", "ReadFile"}),
        denied_tensorflow_ops=frozenset({"Conv2D"}),
    )
    file = scan(path, compute_hash=False, policy=policy).files[0]
    graded = sorted((f.rule_id, f.location.detail, f.severity.value) for f in file.findings)
    assert graded == [("TF-FILE-ACCESS", "read", "high"), ("TF-UNKNOWN-OP", "conv", "high")]


@pytest.mark.parametrize("asset", ["../../../etc/passwd", "/etc/shadow", "C:\\keys.txt", "a/../../b"])
def test_asset_paths_leaving_the_assets_folder(tmp_path: Path, asset: str) -> None:
    data = samples.saved_model(samples.keras_like_graph(), assets=("vocab.txt", asset))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(data)
    assert ids_and_details(scan_one(path)) == [("TF-ASSET-PATH", asset)]


def test_truncated_frozen_graph_and_unknown_fields_are_still_scanned(tmp_path: Path) -> None:
    graph = samples.graph_def([samples.node("input", "Placeholder"), samples.node("leak", "ReadFile", "p")])
    unknown = samples.message(77, b"ignored by protobuf")
    (tmp_path / "unknown.pb").write_bytes(graph + unknown)
    assert ids_and_details(scan_one(tmp_path / "unknown.pb")) == [("TF-FILE-ACCESS", "leak")]
    (tmp_path / "truncated.pb").write_bytes(graph[:-3])
    file = scan_one(tmp_path / "truncated.pb")
    assert file.tree.format == "tensorflow"
    assert "TF-MALFORMED" in {f.rule_id for f in file.findings}
