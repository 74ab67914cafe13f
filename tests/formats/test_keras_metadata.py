"""Legacy tf.keras `keras_metadata.pb`: every node's Keras config judged (Lambda bytecode, classes
outside Keras), found by content under any name, and never clean when it cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.samples import keras_metadata_samples as kms

from modelshield import FileResult, Limits, Severity, Verdict, scan


def scan_bytes(tmp_path: Path, data: bytes, name: str = "keras_metadata.pb", **options: object) -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan(path, compute_hash=False, **options).files[0]  # type: ignore[arg-type]


def where(result: FileResult) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(f.rule_id, f.location.chain[1:], f.location.detail) for f in result.findings]


def test_benign_sequential_is_clean(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, kms.BENIGN)
    assert result.tree.format == "keras-metadata"
    assert (result.findings, result.issues, result.verdict) == ((), (), Verdict.CLEAN)


def test_lambda_found_once_at_its_own_node(tmp_path: Path) -> None:
    """The root's config and its model_config repeat the layer: one finding, at the layer's node."""
    result = scan_bytes(tmp_path, kms.LAMBDA_OS)
    assert where(result) == [("KERAS-LAMBDA", ("root.layer-1",), "(Lambda lambda)")]
    assert result.findings[0].severity is Severity.CRITICAL
    assert "it names __import__, os, system" in result.findings[0].message


def test_lambda_run_with_the_globals_of_os_is_critical(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, kms.LAMBDA_MODULE_OS)
    assert where(result) == [("KERAS-LAMBDA", ("root.layer-0",), "(Lambda lambda)")]
    assert result.findings[0].severity is Severity.CRITICAL
    assert "it names os, system" in result.findings[0].message


def test_lambda_hidden_only_in_the_model_config_is_found_there(tmp_path: Path) -> None:
    hidden = kms.lambda_layer("lambda x: __import__('os').system('id') or x")
    root = kms.sequential(kms.dense(), hidden)
    data = kms.node("root", root, "_tf_keras_sequential") + kms.node("root.layer-0", kms.dense(), node_id=1)
    result = scan_bytes(tmp_path, data)
    assert where(result) == [("KERAS-LAMBDA", ("root",), "config.layers[1] (Lambda lambda)")]


def test_custom_module_and_dangerous_initializer(tmp_path: Path) -> None:
    assert where(scan_bytes(tmp_path, kms.CUSTOM)) == [
        ("KERAS-CUSTOM-OBJECT", ("root.layer-1",), "(Attention attention)")
    ]
    dangerous = scan_bytes(tmp_path, kms.DANGEROUS_INITIALIZER)
    assert where(dangerous) == [("KERAS-DANGEROUS-OBJECT", ("root.layer-0",), "config.kernel_initializer")]


def test_any_identifier_is_judged_and_any_name_is_recognised(tmp_path: Path) -> None:
    """The loader revives every node from its JSON, whatever its identifier; content decides, not the name."""
    data = kms.node("root", kms.lambda_layer("lambda x: x * 2"), identifier="custom")
    result = scan_bytes(tmp_path, data, name="weights.bin")
    assert result.tree.format == "keras-metadata"
    assert where(result) == [("KERAS-LAMBDA", ("root",), "(Lambda lambda)")]
    assert result.findings[0].severity is Severity.HIGH


def test_unknown_top_level_fields_before_the_nodes_do_not_hide_them(tmp_path: Path) -> None:
    padding = kms.message(7, b"x" * 40) * 8
    result = scan_bytes(tmp_path, padding + kms.LAMBDA_OS)
    assert where(result) == [("KERAS-LAMBDA", ("root.layer-1",), "(Lambda lambda)")]


def test_truncated_metadata_is_not_clean(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, kms.BENIGN[:-30])
    assert result.tree.format == "keras-metadata"
    assert [i.kind for i in result.issues] == ["unparsed"]
    assert result.verdict is Verdict.ERROR


def test_truncated_first_node_is_claimed_and_not_clean(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, kms.BENIGN[:120])
    assert result.tree.format == "keras-metadata"
    assert result.verdict is Verdict.ERROR


def test_metadata_that_is_not_json_is_not_clean(tmp_path: Path) -> None:
    data = kms.node("root", "{not json", "_tf_keras_model")
    result = scan_bytes(tmp_path, data)
    assert [(i.kind, i.location.chain[1:]) for i in result.issues] == [("unparsed", ("root",))]
    assert result.verdict is Verdict.ERROR


def test_node_without_metadata_is_not_clean(tmp_path: Path) -> None:
    data = kms.message(1, kms.message(3, "root") + kms.message(4, "_tf_keras_model"))
    result = scan_bytes(tmp_path, data)
    assert [(i.kind, i.location.chain[1:]) for i in result.issues] == [("unparsed", ("root",))]


def test_oversized_metadata_is_a_limit(tmp_path: Path) -> None:
    big = kms.dense()
    big["config"]["padding"] = "x" * 5000
    result = scan_bytes(tmp_path, kms.metadata(big), limits=Limits(max_config_bytes=4096))
    assert {(i.kind, i.location.chain[1:]) for i in result.issues} == {
        ("limit", ("root",)),
        ("limit", ("root.layer-0",)),
    }
    assert result.verdict is Verdict.ERROR


def test_many_nodes_are_held_to_the_time_limit(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, kms.BENIGN, limits=Limits(max_seconds_per_file=1e-9))
    assert [(i.kind, i.location.detail) for i in result.issues] == [("limit", "max_seconds_per_file")]
    assert result.verdict is Verdict.ERROR


def test_other_protobufs_and_data_are_not_claimed(tmp_path: Path) -> None:
    not_keras = kms.message(1, kms.message(3, "root") + kms.message(5, "plain text"))
    assert scan_bytes(tmp_path, not_keras).tree.format == "data"
    assert scan_bytes(tmp_path, b"\x00" * 64).tree.format == "data"
    assert scan_bytes(tmp_path, b" " * 4096).tree.format == "data"


def test_registered_class_names_outside_keras_but_not_tf_keras_optimizers(tmp_path: Path) -> None:
    """Keras 2 names a registered class `package>Name` in class_name; tf_keras registers its own
    optimizers under the default package, Custom."""
    root = kms.sequential(kms.dense())
    root["training_config"] = {"optimizer_config": {"class_name": "Custom>Adam", "config": {"name": "Adam"}}}
    custom = kms.layer("mylab>Scale", {"name": "scale"})
    data = kms.node("root", root, "_tf_keras_sequential") + kms.node("root.layer-0", custom, node_id=1)
    assert where(scan_bytes(tmp_path, data)) == [
        ("KERAS-CUSTOM-OBJECT", ("root.layer-0",), "(mylab>Scale scale)")
    ]


def test_fields_the_parser_skips_do_not_hide_the_first_node(tmp_path: Path) -> None:
    """protobuf skips a field of the wrong wire type (here node_id as bytes) and small unknown fields."""
    padding = kms.number(9, 1) * 5000
    first = kms.message(
        1,
        kms.message(2, "x")
        + kms.message(3, "root")
        + kms.message(5, json.dumps(kms.lambda_layer("lambda x: x"))),
    )
    result = scan_bytes(tmp_path, padding + first, name="data.bin")
    assert where(result) == [("KERAS-LAMBDA", ("root",), "(Lambda lambda)")]


def test_findings_before_a_limit_are_kept(tmp_path: Path) -> None:
    wide = kms.layer("Dense", {"name": "wide", "units": list(range(100))})
    data = kms.node("root.layer-0", kms.lambda_layer("lambda x: x")) + kms.node(
        "root.layer-1", wide, node_id=2
    )
    result = scan_bytes(tmp_path, data, limits=Limits(max_config_nodes=50))
    assert where(result) == [("KERAS-LAMBDA", ("root.layer-0",), "(Lambda lambda)")]
    assert [i.kind for i in result.issues] == ["limit"]


def test_padding_past_the_sniff_budget_does_not_hide_the_nodes(tmp_path: Path) -> None:
    padding = kms.number(9, 1) * 70_000  # more well-formed fields than the sniffer walks
    result = scan_bytes(tmp_path, padding + kms.LAMBDA_OS, name="data.bin")
    assert result.tree.format == "keras-metadata"
    assert [f.rule_id for f in result.findings] == ["KERAS-LAMBDA"]


def test_a_long_pickle_that_also_reads_as_protobuf_fields_stays_a_pickle(tmp_path: Path) -> None:
    from tests.samples import limit_samples

    result = scan_bytes(tmp_path, limit_samples.pickle_of_empty_dicts(100_000), name="model.pkl")
    assert result.tree.format == "pickle"
