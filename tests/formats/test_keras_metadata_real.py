"""Legacy SavedModels written by tf_keras itself (`save_format="tf"`, with keras_metadata.pb): benign
models come out clean; a Lambda and a registered custom class are found at their node in
keras_metadata.pb, also when that file is scanned alone under another name; and the real loader
(`tf_keras.models.load_model` in the tensorflow venv, a child process) runs both while loading."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.formats.test_tensorflow_real import SAVED_MODEL_FILES
from tests.samples import tf_real

from modelshield import Severity, Verdict, scan


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tf_real.samples_or_skip(tmp_path_factory.getbasetemp())


LEGACY_FILES = SAVED_MODEL_FILES | {"keras_metadata.pb"}


@pytest.mark.parametrize("name", ["tf_keras_sequential", "tf_keras_functional"])
def test_real_legacy_keras_models_are_clean(real: dict[str, Path], name: str) -> None:
    root = real[name]
    result = scan(root, compute_hash=False)
    assert {Path(f.path).relative_to(root).as_posix() for f in result.files} == LEGACY_FILES
    for file in result.files:
        assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN), file.path
    formats = {Path(f.path).name: f.tree.format for f in result.files if f.path.endswith(".pb")}
    assert formats == {
        "saved_model.pb": "tensorflow",
        "keras_metadata.pb": "keras-metadata",
        "fingerprint.pb": "data",
    }


# sample -> (rule id, node path, detail, severity)
HOSTILE = {
    "tf_keras_lambda": ("KERAS-LAMBDA", "root.layer-1", "(Lambda lambda)", Severity.CRITICAL),
    "tf_keras_custom_object": (
        "KERAS-CUSTOM-OBJECT",
        "root.layer_with_weights-0",
        f"({tf_real.TF_KERAS_CUSTOM_CLASS} scores)",
        Severity.MEDIUM,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_real_hostile_keras_metadata_names_rule_and_node(
    real: dict[str, Path], name: str, tmp_path: Path
) -> None:
    rule_id, node_path, detail, severity = HOSTILE[name]
    metadata = real[name] / "keras_metadata.pb"
    result = scan(real[name], compute_hash=False)
    flagged = [f for f in result.files if f.findings]
    assert [f.path for f in flagged] == [str(metadata)]
    assert [(f.rule_id, f.location.chain, f.location.detail, f.severity) for f in flagged[0].findings] == [
        (rule_id, (str(metadata), node_path), detail, severity)
    ]
    assert all(f.verdict is Verdict.CLEAN for f in result.files if f is not flagged[0])
    alone = tmp_path / "renamed.bin"  # content decides, not the name or the SavedModel beside it
    shutil.copyfile(metadata, alone)
    found = scan(alone, compute_hash=False).files[0]
    assert [(f.rule_id, f.location.chain[1:], f.location.detail) for f in found.findings] == [
        (rule_id, (node_path,), detail)
    ]


def test_real_lambda_names_what_it_runs(real: dict[str, Path]) -> None:
    [finding] = scan(real["tf_keras_lambda"] / "keras_metadata.pb", compute_hash=False).files[0].findings
    assert finding.message.endswith("it names open")
    assert "tf_keras_lambda.txt" in (finding.evidence or "")


MARKERS = {"tf_keras_lambda": "tf_keras_lambda.txt", "tf_keras_custom_object": "tf_keras_custom_object.txt"}


@pytest.fixture(scope="module")
def proofs(real: dict[str, Path]) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Every legacy Keras sample through tf_keras.models.load_model, once, after clearing its markers."""
    samples = next(iter(real.values())).parent
    markers = samples / tf_real.MARKERS
    for marker in MARKERS.values():
        (markers / marker).unlink(missing_ok=True)
    names = ("tf_keras_sequential", "tf_keras_functional", *MARKERS)
    return markers, tf_real.prove_in_venv(samples, dict.fromkeys(names))


def test_real_loader_rebuilds_benign_models(proofs: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, results = proofs
    assert results["tf_keras_sequential"]["loaded"] is True
    assert results["tf_keras_sequential"]["layers"][-1] == "tf_keras.src.layers.core.dense.Dense"
    assert "tf_keras.src.layers.rnn.bidirectional.Bidirectional" in results["tf_keras_functional"]["layers"]


def test_real_loader_runs_the_lambda_while_loading(proofs: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    markers, results = proofs
    assert results["tf_keras_lambda"]["layers"][-1] == "tf_keras.src.layers.core.lambda_layer.Lambda"
    assert (markers / MARKERS["tf_keras_lambda"]).read_text() == "written by the Lambda"


def test_real_loader_builds_the_custom_class_the_metadata_names(
    proofs: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    """The edited node asks for `mylab>Dropper`; a process that has it registered builds it on load."""
    markers, results = proofs
    assert results["tf_keras_custom_object"]["layers"] == ["__main__.Dropper"]
    assert (markers / MARKERS["tf_keras_custom_object"]).read_text() == "built by the loader"
