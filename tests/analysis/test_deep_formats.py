"""`--deep` beyond tensors stored in place: re-packed (deflated) and legacy torch storages, ONNX external
data, HDF5 datasets (plain, chunked and compressed, legacy Keras `.h5`, Keras v3 weights). Each sample
is written by the real library; a benign one is clean, a payload in the low bytes is found where it is."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.samples import weight_samples as ws
from tests.samples.safetensors_samples import elf_bytes

import modelshield

PAYLOAD_AT = 1000
EVIL = ws.embed_low_byte(ws.normal_weights(), elf_bytes() * 32, at=PAYLOAD_AT)
"""A layer's weights with an ELF in the low byte of weights 1000 onwards."""


def _deep(path: Path) -> modelshield.FileResult:
    (result,) = modelshield.scan(path, compute_hash=False, deep=True).files
    return result


def _hits(result: modelshield.FileResult) -> list[tuple[tuple[str, ...], int | None, str | None]]:
    return [
        (f.location.chain, f.location.offset, f.location.detail)
        for f in result.findings
        if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"
    ]


def _loads(code: str, path: Path) -> None:
    """The sample is what the real library reads (run in a child: tests never load samples in process)."""
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


_TORCH_LOADS = (
    "import sys, torch; d = torch.load(sys.argv[1], weights_only=True); "
    "print('ok' if d['fc.weight'].shape == (1 << 18,) else d)"
)


# ---- PyTorch ----


def test_payload_in_a_deflated_torch_storage_is_found(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_deflated(tmp_path, {"fc.weight": EVIL, "fc.bias": ws.normal_weights(64)})
    _loads(_TORCH_LOADS, path)
    result = _deep(path)
    assert _hits(result) == [
        ((str(path), "model/data/0"), PAYLOAD_AT * 4, f"tensor 'data/0', weight {PAYLOAD_AT}")
    ]


def test_benign_deflated_torch_checkpoint_is_clean_with_deep(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_deflated(tmp_path, {"fc.weight": ws.normal_weights(), "fc.bias": ws.normal_weights(64)})
    result = _deep(path)
    assert (result.findings, result.issues) == ((), ())


def test_payload_in_a_legacy_torch_storage_is_found(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_legacy(tmp_path, {"fc.weight": EVIL})
    _loads(_TORCH_LOADS, path)
    (hit,) = _hits(_deep(path))
    chain, offset, detail = hit
    assert chain == (str(path),)
    assert detail is not None and re.fullmatch(rf"tensor 'storage \d+', weight {PAYLOAD_AT}", detail)
    assert offset is not None
    assert path.read_bytes()[offset : offset + 16 : 4] == elf_bytes()[:4]


def test_benign_legacy_torch_checkpoint_is_clean_with_deep(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_legacy(tmp_path, {"fc.weight": ws.normal_weights(), "fc.bias": ws.normal_weights(64)})
    result = _deep(path)
    assert (result.findings, result.issues) == ((), ())


def test_payload_in_a_legacy_tar_storage_is_found(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from tests.samples.torch_samples import legacy_tar_with_storage

    path = legacy_tar_with_storage(tmp_path, floats=EVIL.tobytes())
    code = _TORCH_LOADS.replace("True", "False").replace("fc.weight", "weight")
    _loads(code, path)
    result = _deep(path)
    start = len(pickle.dumps(1, protocol=2) + pickle.dumps(("1", "cpu", torch.FloatStorage), protocol=2)) + 8
    assert _hits(result) == [
        ((str(path), "storages"), start + PAYLOAD_AT * 4, f"tensor 'storage 1', weight {PAYLOAD_AT}")
    ]


def test_benign_legacy_tar_storage_is_clean_with_deep(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tests.samples.torch_samples import legacy_tar_with_storage

    result = _deep(legacy_tar_with_storage(tmp_path, floats=ws.normal_weights().tobytes()))
    assert (result.findings, result.issues) == ((), ())


def test_deflated_storages_are_not_read_without_deep(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_deflated(tmp_path, {"fc.weight": EVIL})
    result = modelshield.scan(path, compute_hash=False).files[0]
    assert not [f for f in result.findings if f.rule_id.startswith("WEIGHTS-")]


# ---- ONNX external data ----

_ONNX_LOADS = (
    "import sys, onnx; from onnx import numpy_helper; m = onnx.load(sys.argv[1]); "
    "print('ok' if numpy_helper.to_array(m.graph.initializer[0]).shape == (1 << 18,) else m)"
)


def test_payload_in_onnx_external_data_is_found(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = ws.onnx_external(tmp_path, {"fc.weight": EVIL, "fc.bias": ws.normal_weights(64)})
    _loads(_ONNX_LOADS, path)
    result = _deep(path)
    assert _hits(result) == [
        ((str(path), "weights.bin"), PAYLOAD_AT * 4, f"tensor 'fc.weight', weight {PAYLOAD_AT}")
    ]
    assert (tmp_path / "weights.bin").read_bytes()[PAYLOAD_AT * 4 : PAYLOAD_AT * 4 + 16 : 4] == b"\x7fELF"


def test_benign_onnx_external_data_is_clean_with_deep(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    tensors = {"fc.weight": ws.normal_weights(), "fc.half": ws.normal_weights(512).astype("float16")}
    result = _deep(ws.onnx_external(tmp_path, tensors))
    assert [f.rule_id for f in result.findings] == ["ONNX-EXTERNAL-DATA"]
    assert result.issues == ()


def test_onnx_external_data_linked_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model_dir, elsewhere = tmp_path / "model", tmp_path / "elsewhere"
    model_dir.mkdir()
    elsewhere.mkdir()
    path = ws.onnx_external(model_dir, {"fc.weight": EVIL})
    (model_dir / "weights.bin").rename(elsewhere / "weights.bin")
    (model_dir / "weights.bin").symlink_to(elsewhere / "weights.bin")
    result = _deep(path)
    assert _hits(result) == []
    assert [(i.kind, i.location.chain) for i in result.issues] == [
        ("deep-unsupported", (str(path), "weights.bin"))
    ]


def test_onnx_external_data_is_not_read_without_deep(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = ws.onnx_external(tmp_path, {"fc.weight": EVIL})
    (result,) = modelshield.scan(path, compute_hash=False).files
    assert [f.rule_id for f in result.findings] == ["ONNX-EXTERNAL-DATA"]
