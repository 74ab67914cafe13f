"""Build HDF5 samples in code with h5py: plain files, a real legacy Keras H5 save, and hostile files
(external links, external raw storage, virtual datasets, user blocks, Lambda layers in model_config)."""

from __future__ import annotations

import base64
import json
import marshal
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

SampleBuilder = Callable[[Path], Path]

ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00"


def plain(directory: Path, name: str = "plain.h5") -> Path:
    path = directory / name
    with h5py.File(path, "w") as f:
        f["weights"] = np.arange(12, dtype="f4").reshape(3, 4)
        group = f.create_group("layers/dense")
        group.attrs["units"] = 4
        group.attrs["note"] = "a dense layer"
        group.attrs["names"] = np.array([b"kernel:0", b"bias:0"])
        f["alias"] = h5py.SoftLink("/weights")
    return path


def keras_saved(directory: Path) -> Path:
    """A real legacy `.h5` save from Keras 3 (torch backend)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    path = directory / "legacy.h5"
    model.save(path)
    return path


def keras_saved_lambda(directory: Path) -> Path:
    """A real legacy `.h5` save from Keras 3 of a model with a (harmless) Lambda layer."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2, name="double")])
    path = directory / "lambda_saved.h5"
    model.save(path)
    return path


def external_links(directory: Path, *targets: str, name: str = "links.h5") -> Path:
    path = directory / name
    with h5py.File(path, "w") as f:
        for i, target in enumerate(targets):
            f[f"link{i}"] = h5py.ExternalLink(target, "/data")
    return path


def external_storage(directory: Path, target: str, name: str = "external.h5") -> Path:
    path = directory / name
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", shape=(16,), dtype="u1", external=[(target, 0, 16)])
    return path


def virtual(directory: Path, source: str, name: str = "virtual.h5") -> Path:
    path = directory / name
    layout = h5py.VirtualLayout(shape=(4,), dtype="i4")
    layout[:] = h5py.VirtualSource(source, "data", shape=(4,))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("v", layout)
    return path


def user_block(directory: Path, content: bytes, name: str = "userblock.h5") -> Path:
    path = directory / name
    with h5py.File(path, "w", userblock_size=512) as f:
        f["data"] = np.zeros(4)
    data = bytearray(path.read_bytes())
    data[: len(content)] = content
    path.write_bytes(bytes(data))
    return path


def code_attribute(directory: Path, name: str = "code.h5") -> Path:
    path = directory / name
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(4)
        f["data"].attrs["hook"] = "import os\nos.system('touch /tmp/pwned')\n"
    return path


def lambda_function(source: str) -> str:
    """The Keras 2 `func_dump` encoding of a lambda: base64 of its marshalled code object."""
    code = compile(source, "<lambda>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode("ascii")


def lambda_model_config(source: str) -> dict[str, object]:
    """A legacy (Keras 2) Sequential model_config with one Lambda layer, as tf.keras wrote it in H5."""
    return {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "name": "input_1"}},
                {
                    "class_name": "Lambda",
                    "config": {
                        "name": "lambda",
                        "function": [lambda_function(source), None, None],
                        "function_type": "lambda",
                        "module": "__main__",
                        "output_shape": None,
                        "arguments": {},
                    },
                },
            ],
        },
    }


OS_SYSTEM_LAMBDA = "lambda x: __import__('os').system('touch /tmp/pwned') or x"


def legacy_keras(directory: Path, model_config: dict[str, object], name: str = "lambda.h5") -> Path:
    """A legacy Keras H5 file with the root attributes Keras 2 wrote (no weights needed to load config)."""
    path = directory / name
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(model_config)
        f.attrs["keras_version"] = "2.12.0"
        f.attrs["backend"] = "tensorflow"
        f.create_group("model_weights")
    return path


RULE_SAMPLES: dict[str, SampleBuilder] = {
    "HDF5-EXTERNAL-LINK": lambda d: external_links(d, "other.h5"),
    "HDF5-EXTERNAL-STORAGE": lambda d: external_storage(d, "data.bin"),
    "HDF5-PATH-ESCAPE": lambda d: external_links(d, "/etc/passwd"),
    "HDF5-USER-BLOCK": lambda d: user_block(d, ELF_HEADER),
    "HDF5-CODE-ATTRIBUTE": code_attribute,
}
"""Rule id -> a builder of one file that fires it (for tests/test_rule_coverage.py)."""
