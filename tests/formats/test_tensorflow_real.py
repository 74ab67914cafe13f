"""TensorFlow graphs written by tensorflow-cpu itself: Keras exports, tf.Module SavedModels with assets,
control flow and lookup tables, frozen graphs come out clean; each hostile technique is found at its
node and function, and the real loader (in the tensorflow venv, a child process) accepts the file and
runs the payload: on call, or inside tf.saved_model.load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.samples import tf_real

from modelshield import Verdict, scan


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tf_real.samples_or_skip(tmp_path_factory.getbasetemp())


SAVED_MODEL_FILES = {
    "saved_model.pb",
    "fingerprint.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
}


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("keras_export", SAVED_MODEL_FILES),
        ("keras_saved_model", SAVED_MODEL_FILES),
        ("module_with_assets", SAVED_MODEL_FILES | {"assets/vocab.txt"}),
        ("lookup_tables", SAVED_MODEL_FILES | {"assets/labels.txt"}),
        ("ops_tour", SAVED_MODEL_FILES),
        ("v1_saved_model_with_table", {"saved_model.pb", "assets/v1_vocab.txt"}),
        ("frozen_graph.pb", {""}),
        ("frozen_v1_control_flow.pb", {""}),
    ],
)
def test_real_benign_models_are_clean(real: dict[str, Path], name: str, files: set[str]) -> None:
    root = real[name]
    result = scan(root, compute_hash=False)
    assert {
        "" if f.path == str(root) else Path(f.path).relative_to(root).as_posix() for f in result.files
    } == files
    for file in result.files:
        assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN), file.path
    graphs = [f for f in result.files if f.path.endswith(".pb") and not f.path.endswith("fingerprint.pb")]
    assert [f.tree.format for f in graphs] == ["tensorflow"]


CLIMB = f"../../{tf_real.MARKERS}/{tf_real.SECRET}"
TABLE_INIT = "text_file_init/InitializeTableFromTextFileV2"

# sample -> findings as (rule id, location detail, evidence), and where the message places them
HOSTILE: dict[str, tuple[list[tuple[str, str, str]], str]] = {
    "read_file": ([("TF-FILE-ACCESS", "steal", "ReadFile")], "serve"),
    "write_file": ([("TF-FILE-ACCESS", "drop", "WriteFile")], "serve"),
    "matching_files": ([("TF-FILE-ACCESS", "listing", "MatchingFiles")], "serve"),
    "print_to_file": ([("TF-FILE-ACCESS", "spy", "PrintV2")], "serve"),
    "text_line_dataset": (
        [("TF-FILE-ACCESS", "TextLineDataset", "TextLineDataset")],
        "Dataset_flat_map_read_one_file",
    ),
    "write_on_load": ([("TF-FILE-ACCESS", "drop_on_load", "WriteFile")], "_initializer"),
    "table_constant_filename": (
        [("TF-FILE-ACCESS", TABLE_INIT, "InitializeTableFromTextFileV2")],
        "_initializer",
    ),
    "debug_identity": ([("TF-DEBUG-OP", "tap", "DebugIdentity")], "serve"),
    "py_function": ([("TF-PYTHON-CALL", "python_callback", "EagerPyFunc")], "serve"),
    "numpy_function": ([("TF-PYTHON-CALL", "numpy_callback", "PyFunc")], "serve"),
    "asset_climbs_out": ([("TF-ASSET-PATH", CLIMB, CLIMB)], ""),
    # SavedModelBuilder packs the AssetFileDef twice into the 'saved_model_assets' collection
    "v1_asset_climbs_out": ([("TF-ASSET-PATH", CLIMB, CLIMB)] * 2, ""),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_real_hostile_saved_models_name_rule_and_location(real: dict[str, Path], name: str) -> None:
    expected, function = HOSTILE[name]
    result = scan(real[name], compute_hash=False)
    flagged = [f for f in result.files if f.findings]
    assert [Path(f.path).name for f in flagged] == ["saved_model.pb"]
    findings = flagged[0].findings
    assert sorted((f.rule_id, f.location.detail, f.evidence) for f in findings) == expected
    where = rf"meta graph #0 › function '__inference_{function}_\d+'" if function else "of meta graph #0"
    assert all(re.search(where, f.message) for f in findings), [f.message for f in findings]
    assert flagged[0].verdict is Verdict.SUSPICIOUS
    assert all(f.verdict is Verdict.CLEAN for f in result.files if f is not flagged[0])


FEEDS: dict[str, Any] = {
    "write_on_load": None,  # load only: the payload runs inside tf.saved_model.load
    "read_file": "",
    "text_line_dataset": "",
    "write_file": "payload from the caller",
    "matching_files": "",
    "print_to_file": [1.5, 2.5],
    "debug_identity": [1.5, 2.5],
    "py_function": [1.5, 2.5],
    "numpy_function": [1.5, 2.5],
    "table_constant_filename": [tf_real.SECRET_TEXT, "cat"],
    "asset_climbs_out": [tf_real.SECRET_TEXT, "cat"],
    "v1_asset_climbs_out": [tf_real.SECRET_TEXT, "red"],
}


@pytest.fixture(scope="module")
def proofs(real: dict[str, Path]) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Every hostile sample through the real loader, once, after clearing the markers it writes."""
    samples = next(iter(real.values())).parent
    markers = samples / tf_real.MARKERS
    for written in markers.iterdir():
        if written.is_dir():
            shutil.rmtree(written)
        elif written.name != tf_real.SECRET:
            written.unlink()
    return markers, tf_real.prove_in_venv(samples, FEEDS)


def test_real_loader_runs_payload_on_load(proofs: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    markers, results = proofs
    assert results["write_on_load"] == {"loaded": True}
    assert (markers / "on_load.txt").read_text() == "written while loading"


def test_real_loader_runs_file_payloads_on_call(proofs: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    markers, results = proofs
    outputs = {name: results[name].get("outputs", results[name]) for name in FEEDS if name != "write_on_load"}
    assert outputs["read_file"] == {"output_0": tf_real.SECRET_TEXT}
    assert outputs["text_line_dataset"] == {"output_0": tf_real.SECRET_TEXT}
    assert (markers / "write_file.txt").read_text() == "payload from the caller"
    assert f"{markers}/{tf_real.SECRET}" in outputs["matching_files"]["output_0"]
    assert (markers / "print_to_file.txt").read_text() == "[1.5 2.5]\n"
    assert outputs["print_to_file"] == outputs["debug_identity"] == {"output_0": [1.5, 2.5]}
    dumps = [p.name for p in (markers / "debug_identity").rglob("*") if p.is_file()]
    assert len(dumps) == 1 and dumps[0].startswith("x_0_DebugIdentity_"), dumps


@pytest.mark.parametrize("name", ["table_constant_filename", "asset_climbs_out", "v1_asset_climbs_out"])
def test_real_loader_fills_tables_from_host_files_on_load(
    proofs: tuple[Path, dict[str, dict[str, Any]]], name: str
) -> None:
    """The table is filled while the model loads: the host file's only line is id 0, and the
    vocabulary the author shipped in assets/ was never read."""
    _, results = proofs
    assert results[name] == {"loaded": True, "outputs": {"output_0": [0, -1]}}


@pytest.mark.parametrize(
    ("name", "node"), [("py_function", "python_callback"), ("numpy_function", "numpy_callback")]
)
def test_real_loader_accepts_python_callbacks_and_runs_them_by_token(
    proofs: tuple[Path, dict[str, dict[str, Any]]], name: str, node: str
) -> None:
    """The SavedModel loads; the call reaches the PyFunc node, which looks its callable up by token in
    the loading process (a fresh process has none registered, so this call fails there)."""
    _, results = proofs
    assert results[name]["loaded"] is True
    error = results[name]["call_error"]
    assert f"Detected at node {node}" in error and "Could not find callback with key=pyfunc_" in error
