"""`--deep` beyond tensors stored in place: re-packed (deflated) and legacy torch storages, ONNX external
data, HDF5 datasets (plain, chunked and compressed, legacy Keras `.h5`, Keras v3 weights). Each sample
is written by the real library; a benign one is clean, a payload in the low bytes is found where it is."""

from __future__ import annotations

import gzip
import pickle
import re
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def test_onnx_external_data_inside_an_archive_is_reported_not_read(tmp_path: Path) -> None:
    """Only a model on disk has a folder to find its side file in; inside an archive it says so."""
    pytest.importorskip("onnx")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    ws.onnx_external(model_dir, {"fc.weight": EVIL})
    packed = tmp_path / "model.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        for name in ("model.onnx", "weights.bin"):
            archive.write(model_dir / name, name)
    result = _deep(packed)
    assert _hits(result) == []
    assert [(i.kind, i.location.chain) for i in result.issues] == [
        ("deep-unsupported", (str(packed), "model.onnx", "weights.bin"))
    ]


def test_onnx_external_data_is_not_read_without_deep(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = ws.onnx_external(tmp_path, {"fc.weight": EVIL})
    (result,) = modelshield.scan(path, compute_hash=False).files
    assert [f.rule_id for f in result.findings] == ["ONNX-EXTERNAL-DATA"]


# ---- HDF5 and Keras ----

_H5_LOADS = (
    "import sys, h5py; f = h5py.File(sys.argv[1], 'r'); print('ok' if f['{name}'][...].size == {size} else f)"
)


def _h5_payload_offset(path: Path, name: str) -> int:
    """Where h5py says a contiguous dataset's bytes are (read in a child, as every loader use here)."""
    code = f"import sys, h5py; print(h5py.File(sys.argv[1], 'r')['{name}'].id.get_offset())"
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    return int(run.stdout) + PAYLOAD_AT * 4


def test_payload_in_a_contiguous_hdf5_dataset_is_found(tmp_path: Path) -> None:
    path = ws.hdf5_weights(tmp_path, {"layer/kernel": EVIL, "layer/bias": ws.normal_weights(64)})
    _loads(_H5_LOADS.format(name="layer/kernel", size=EVIL.size), path)
    assert _hits(_deep(path)) == [
        (
            (str(path),),
            _h5_payload_offset(path, "layer/kernel"),
            f"tensor '/layer/kernel', weight {PAYLOAD_AT}",
        )
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"chunks": (4096,)},
        {"chunks": (5000,), "compression": "gzip"},
        {"chunks": (3000,), "compression": "gzip", "shuffle": True},
    ],
    ids=["chunked", "gzip", "gzip-shuffle"],
)
def test_payload_in_a_chunked_hdf5_dataset_is_found(tmp_path: Path, options: dict[str, object]) -> None:
    path = ws.hdf5_weights(tmp_path, {"w": EVIL}, **options)
    _loads(_H5_LOADS.format(name="w", size=EVIL.size), path)
    assert _hits(_deep(path)) == [((str(path), "/w"), PAYLOAD_AT * 4, f"tensor '/w', weight {PAYLOAD_AT}")]


def test_payload_in_a_two_dimensional_chunked_dataset_is_found_in_storage_order(tmp_path: Path) -> None:
    """Edge chunks are padded to the chunk shape; the padding is not analysed, the elements are."""
    path = ws.hdf5_weights(tmp_path, {"w": EVIL.reshape(512, 512)}, chunks=(100, 512), compression="gzip")
    assert _hits(_deep(path)) == [((str(path), "/w"), PAYLOAD_AT * 4, f"tensor '/w', weight {PAYLOAD_AT}")]


@pytest.mark.parametrize(
    "options",
    [{}, {"chunks": True}, {"chunks": True, "compression": "gzip", "shuffle": True}],
    ids=["contiguous", "chunked", "gzip-shuffle"],
)
def test_benign_hdf5_weights_are_clean_with_deep(tmp_path: Path, options: dict[str, object]) -> None:
    datasets = {
        "dense/kernel": ws.normal_weights(),
        "dense/bias": ws.normal_weights(300, seed=1),
        "edge": ws.normal_weights(70_007, seed=2).reshape(-1, 7),
        "half": ws.normal_weights(4096, seed=3).astype("float16"),
        "steps": np.arange(10_000, dtype="int64"),
    }
    result = _deep(ws.hdf5_weights(tmp_path, datasets, **options))
    assert (result.findings, result.issues) == ((), ())


def test_payload_in_a_compact_hdf5_dataset_is_found(tmp_path: Path) -> None:
    path = ws.hdf5_compact(tmp_path, "small", EVIL[:12_000])
    _loads(_H5_LOADS.format(name="small", size=12_000), path)
    assert _hits(_deep(path)) == [
        ((str(path), "/small"), PAYLOAD_AT * 4, f"tensor '/small', weight {PAYLOAD_AT}")
    ]


def test_hdf5_filter_it_cannot_undo_is_reported_not_skipped(tmp_path: Path) -> None:
    path = ws.hdf5_weights(tmp_path, {"w": EVIL}, chunks=(4096,), compression="lzf")
    result = _deep(path)
    assert [(i.kind, i.location.chain) for i in result.issues] == [("deep-unsupported", (str(path), "/w"))]
    assert "filter 32000" in result.issues[0].message


def test_big_endian_hdf5_floats_are_reported_not_judged(tmp_path: Path) -> None:
    path = ws.hdf5_weights(tmp_path, {"w": EVIL.astype(">f4")})
    result = _deep(path)
    assert _hits(result) == []
    assert [(i.kind, i.location.chain) for i in result.issues] == [("deep-unsupported", (str(path), "/w"))]


@pytest.mark.parametrize(
    "options",
    [{}, {"chunks": (4096,)}, {"chunks": (3000,), "compression": "gzip", "shuffle": True}],
    ids=["contiguous", "chunked", "gzip-shuffle"],
)
def test_payload_in_an_hdf5_file_only_h5py_reads_is_found(tmp_path: Path, options: dict[str, object]) -> None:
    """The latest file format (new-style groups, other chunk indexes) goes to the isolated h5py probe,
    which says where each float dataset's bytes are; the scanner reads them itself."""
    path = ws.hdf5_weights(tmp_path, {"w": EVIL, "b": ws.normal_weights(5000)}, libver="latest", **options)
    _loads(_H5_LOADS.format(name="w", size=EVIL.size), path)
    result = _deep(path)
    chunked = "chunks" in options
    offset = PAYLOAD_AT * 4 if chunked else _h5_payload_offset(path, "w")
    chain = (str(path), "/w") if chunked else (str(path),)
    assert _hits(result) == [(chain, offset, f"tensor '/w', weight {PAYLOAD_AT}")]
    assert result.issues == ()


def test_benign_hdf5_file_only_h5py_reads_is_clean_with_deep(tmp_path: Path) -> None:
    datasets = {"w": ws.normal_weights(), "edge": ws.normal_weights(70_007, seed=2).reshape(-1, 7)}
    path = ws.hdf5_weights(tmp_path, datasets, libver="latest", chunks=True, compression="gzip")
    result = _deep(path)
    assert (result.findings, result.issues) == ((), ())


def test_compressed_hdf5_stream_says_its_weights_were_not_analysed(tmp_path: Path) -> None:
    path = ws.hdf5_weights(tmp_path, {"w": EVIL})
    packed = tmp_path / "weights.h5.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    result = _deep(packed)
    assert [(i.kind, i.location.chain) for i in result.issues] == [
        ("deep-unsupported", (str(packed), "gzip-decompressed"))
    ]


def test_payload_in_legacy_keras_h5_weights_is_found(tmp_path: Path) -> None:
    path = ws.keras_h5(tmp_path, EVIL.reshape(1024, 256))
    kernel = "model_weights/dense/sequential/dense/kernel"
    assert _hits(_deep(path)) == [
        ((str(path),), _h5_payload_offset(path, kernel), f"tensor '/{kernel}', weight {PAYLOAD_AT}")
    ]


def test_payload_in_keras_v3_weights_is_found(tmp_path: Path) -> None:
    path = ws.keras_v3(tmp_path, EVIL.reshape(1024, 256))
    (hit,) = _hits(_deep(path))
    assert hit[0] == (str(path), "model.weights.h5")
    assert hit[2] == f"tensor '/layers/dense/vars/0', weight {PAYLOAD_AT}"


@pytest.mark.parametrize("save", [ws.keras_h5, ws.keras_v3], ids=["h5", "keras"])
def test_benign_keras_weights_are_clean_with_deep(tmp_path: Path, save: ws.KerasSave) -> None:
    result = _deep(save(tmp_path, ws.normal_weights().reshape(1024, 256)))
    assert result.issues == ()
    assert not [f for f in result.findings if f.rule_id.startswith("WEIGHTS-")]


def test_hdf5_datasets_are_not_read_without_deep(tmp_path: Path) -> None:
    path = ws.hdf5_weights(tmp_path, {"w": EVIL}, chunks=(4096,), compression="gzip")
    (result,) = modelshield.scan(path, compute_hash=False).files
    assert (result.findings, result.issues) == ((), ())


# ---- a payload with no signature: the statistics, in every format ----

_SCRIPT_AT = 70_000
_WRITERS: dict[str, Callable[[Path, np.ndarray], tuple[Path, tuple[str, ...], str]]] = {
    "torch-deflated": lambda d, w: (ws.torch_deflated(d, {"w": w}), ("model/data/0",), "data/0"),
    "onnx-external": lambda d, w: (ws.onnx_external(d, {"w": w}), ("weights.bin",), "w"),
    "hdf5-gzip-shuffle": lambda d, w: (
        ws.hdf5_weights(d, {"w": w}, chunks=(5000,), compression="gzip", shuffle=True),
        ("/w",),
        "/w",
    ),
    "keras-v3": lambda d, w: (
        ws.keras_v3(d, w.reshape(1024, 256)),
        ("model.weights.h5",),
        "/layers/dense/vars/0",
    ),
}


@pytest.mark.parametrize("kind", sorted(_WRITERS))
def test_text_in_low_bytes_is_a_low_bit_anomaly_in_every_format(tmp_path: Path, kind: str) -> None:
    if kind.startswith(("torch", "onnx")):
        pytest.importorskip(kind.split("-")[0])
    path, inner, name = _WRITERS[kind](
        tmp_path, ws.embed_low_byte(ws.normal_weights(), ws.SCRIPT, at=_SCRIPT_AT)
    )
    result = _deep(path)
    assert [
        (f.location.chain, f.location.detail)
        for f in result.findings
        if f.rule_id == "WEIGHTS-LOW-BIT-ANOMALY"
    ] == [((str(path), *inner), f"tensor {name!r}, weights from 65536")]
    assert result.issues == ()


# ---- memory ----


def _peak_while_scanning(path: Path) -> tuple[modelshield.FileResult, int]:
    tracemalloc.start()
    try:
        result = _deep(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_memory_is_bounded_on_a_64_mb_gzip_chunked_dataset(tmp_path: Path) -> None:
    path = ws.hdf5_weights(
        tmp_path, {"big": ws.normal_weights(16 << 20)}, chunks=(1 << 18,), compression="gzip"
    )
    result, peak = _peak_while_scanning(path)
    assert (result.findings, result.issues) == ((), ())
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading a 64 MiB dataset"


def test_memory_is_bounded_on_a_64_mb_deflated_storage(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ws.torch_deflated(tmp_path, {"big": ws.normal_weights(16 << 20)})
    result, peak = _peak_while_scanning(path)
    assert (result.findings, result.issues) == ((), ())
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading a 64 MiB storage"
